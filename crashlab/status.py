"""Read-only views of a running lab: what each service is doing, where each open workflow
waits, who polls which task queue, and whether the ledger still adds up.

Every view is a function returning dataclasses, so the experiments can reuse them;
``collect`` gathers them all into one ``StatusReport`` and ``render`` turns that into
the lines of ``python -m crashlab status``.

Nothing here changes the lab. Every Temporal and bank call has a short deadline: a
paused server keeps its TCP connections open and answers nothing, so without one a
status screen would hang exactly when it is needed most.
"""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.enums.v1 import (
    PendingActivityState,
    PendingWorkflowTaskState,
    TaskQueueType,
    WorkflowTaskFailedCause,
)
from temporalio.api.failure.v1 import Failure
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowExecution, WorkflowHandle

from bank.client import BankClient
from bank.models import Fault, FaultState
from crashlab.invariants import check_bank
from crashlab.levers import CATALOGUE, LabNow
from crashlab.levers import describe_fault as describe_fault  # its older home
from crashlab.stack import SERVICES, Container, Stack, StackError
from crashlab.temporal import CALL_TIMEOUT as CALL_TIMEOUT  # re-exported: their older home
from crashlab.temporal import TEMPORAL_SILENT as TEMPORAL_SILENT
from crashlab.temporal import Unreachable as Unreachable
from crashlab.temporal import connect_temporal as connect_temporal
from crashlab.temporal import runtime as runtime
from crashlab.temporal import within as _within
from worker.shared import MONEY_TRANSFER_TASK_QUEUE_NAME, PRINT_NUMBERS_TASK_QUEUE_NAME

T = TypeVar("T")

# The lab's task queues: the worker container polls the transfers' queue; module 1's
# queue is polled by the process that runs it (run_workflow.py, make print-numbers).
LAB_TASK_QUEUES = (MONEY_TRANSFER_TASK_QUEUE_NAME, PRINT_NUMBERS_TASK_QUEUE_NAME)
# A worker's poll is a long poll: the server holds it up to a minute when there is no
# work, so an idle, healthy worker can show a last access up to ~60 s old. Older than
# this, the poller has stopped polling (the server keeps listing it for minutes).
STALE_POLLER_SECONDS = 70.0
# At most this many open workflows are described one by one.
MAX_WORKFLOWS = 50

BANK_SILENT = "The bank does not answer (paused? killed? disconnected?)"


# --- the containers -----------------------------------------------------------


@dataclass
class ServiceState:
    """One container of one service, as Docker sees it."""

    service: str
    name: str
    container_id: str
    state: str  # running, paused, exited, created, restarting, dead
    health: str  # healthy, unhealthy, starting, or ""
    exit_code: int
    # On every network it shares with the other services (Stack.is_connected); None
    # when it is not running.
    connected: bool | None

    @property
    def killed(self) -> bool:
        return self.state == "exited" and self.exit_code == 137

    @property
    def up(self) -> bool:
        """Running, unfrozen and on its networks: it can do its job."""
        return self.state == "running" and self.connected is not False

    @property
    def label(self) -> str:
        """running (healthy), paused, killed (exit 137), stopped (exit 0)..."""
        if self.state == "running":
            text = f"running ({self.health})" if self.health else "running"
            return text if self.connected is not False else f"{text}, DISCONNECTED"
        if self.state == "paused":
            return "paused (frozen: holds its connections, answers nothing)"
        if self.killed:
            return "killed (exit 137)"
        if self.state == "exited":
            return f"stopped (exit {self.exit_code})"
        if self.state == "created":
            return "created, never started"
        return self.state

    def owns(self, host: str) -> bool:
        """True if a process with this hostname runs in this container (Docker's default
        hostname is the short container id)."""
        return bool(host) and (
            self.container_id.startswith(host) or host.startswith(self.container_id)
        )


def service_states(stack: Stack) -> list[ServiceState]:
    """Every container of the lab's long-running services, with its network connection.

    Raises StackError when Docker cannot be asked.
    """
    states = []
    for c in sorted(stack.containers(), key=lambda c: (_service_order(c.service), c.name)):
        if c.service not in SERVICES:
            continue  # the one-shot starter
        states.append(
            ServiceState(
                service=c.service,
                name=c.name,
                container_id=c.id,
                state=c.state,
                health=c.health,
                exit_code=c.exit_code,
                connected=_connected(stack, c),
            )
        )
    return states


def _service_order(service: str) -> int:
    return SERVICES.index(service) if service in SERVICES else len(SERVICES)


def _connected(stack: Stack, c: Container) -> bool | None:
    if c.state not in ("running", "paused"):
        return None
    try:
        return stack.is_connected(c)
    except StackError:
        return None


# --- Temporal -----------------------------------------------------------------


@dataclass
class PendingActivity:
    activity_id: str
    activity_type: str
    state: str  # scheduled, started, cancel requested, paused
    attempt: int
    maximum_attempts: int  # 0: no limit
    last_failure: str | None
    last_worker_identity: str | None
    next_attempt_at: datetime | None  # while it backs off between attempts
    last_started_at: datetime | None
    last_heartbeat_at: datetime | None

    def describe(self, now: datetime) -> str:
        limit = f"/{self.maximum_attempts}" if self.maximum_attempts else ""
        text = f"activity {self.activity_type}: attempt {self.attempt}{limit}, "
        if self.state == "started":
            text += "running on a worker"
            if self.last_worker_identity:
                text += f" ({self.last_worker_identity})"
            if self.last_started_at:
                text += f" for {_age(self.last_started_at, now)}"
        elif self.next_attempt_at and self.next_attempt_at > now:
            text += f"backing off, next attempt in {_age(now, self.next_attempt_at)}"
        elif self.state == "scheduled":
            text += "scheduled, waiting for a worker to pick it up"
        else:
            text += self.state
        if self.last_failure:
            text += f"; last failure: {self.last_failure}"
        return text


@dataclass
class OpenWorkflow:
    workflow_id: str
    run_id: str
    workflow_type: str
    task_queue: str
    started_at: datetime | None
    pending_activities: list[PendingActivity] = field(default_factory=list)
    workflow_task: str | None = None  # "scheduled" or "started" when one is pending
    workflow_task_attempt: int = 0
    # Why its workflow task failed, when it has failed and is being retried: the
    # worker cannot run the workflow's code on this history (a bug, a workflow type
    # it does not know, a change that no longer matches the history).
    workflow_task_failure: str | None = None
    workflow_task_failure_cause: str | None = None  # e.g. "non deterministic error"
    timer_fires_at: datetime | None = None  # the earliest timer still running
    error: str | None = None  # describe() did not answer

    def where(self, now: datetime) -> list[str]:
        """Where it is, in lines for people."""
        if self.error:
            return [f"(could not describe it: {self.error})"]
        lines = [a.describe(now) for a in self.pending_activities]
        if self.workflow_task_failure is not None:
            lines.append(
                f"ITS WORKFLOW TASK KEEPS FAILING (attempt {self.workflow_task_attempt}): "
                f"{self.workflow_task_failure} ({self.workflow_task_failure_cause})"
            )
        elif self.workflow_task == "scheduled":
            retry = (
                f" (attempt {self.workflow_task_attempt})" if self.workflow_task_attempt > 1 else ""
            )
            lines.append(f"a workflow task waits for a worker to pick it up{retry}")
        elif self.workflow_task == "started":
            lines.append("a worker is running its workflow code")
        if self.timer_fires_at is not None:
            when = _age(now, self.timer_fires_at) if self.timer_fires_at > now else "now"
            lines.append(f"waiting on a timer (fires in {when})")
        if not lines:
            lines.append("no activity pending (waiting for a signal or an update?)")
        return lines

    @property
    def needs_activity_worker(self) -> bool:
        return any(a.state == "scheduled" for a in self.pending_activities)


async def open_workflows(
    client: Client, *, call_timeout: float = CALL_TIMEOUT, limit: int = MAX_WORKFLOWS
) -> list[OpenWorkflow]:
    """Every running workflow (up to ``limit``), each with where it waits.

    Raises Unreachable when Temporal does not list them in time; a workflow whose
    describe() does not answer comes back with ``error`` set.
    """
    rpc_timeout = timedelta(seconds=call_timeout)

    async def listing() -> list[WorkflowExecution]:
        return [
            wf
            async for wf in client.list_workflows(
                'ExecutionStatus="Running"', limit=limit, rpc_timeout=rpc_timeout
            )
        ]

    executions = await _within(listing(), call_timeout)
    return list(
        await asyncio.gather(*(_describe_workflow(client, wf, call_timeout) for wf in executions))
    )


async def _describe_workflow(
    client: Client, execution: WorkflowExecution, call_timeout: float
) -> OpenWorkflow:
    wf = OpenWorkflow(
        workflow_id=execution.id,
        run_id=execution.run_id,
        workflow_type=execution.workflow_type,
        task_queue=execution.task_queue,
        started_at=execution.start_time,
    )
    handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
    try:
        description = await _within(
            handle.describe(rpc_timeout=timedelta(seconds=call_timeout)), call_timeout
        )
        raw = description.raw_description
        wf.pending_activities = [
            PendingActivity(
                activity_id=pa.activity_id,
                activity_type=pa.activity_type.name,
                state=_enum_name(PendingActivityState.Name(pa.state), "PENDING_ACTIVITY_STATE_"),
                attempt=pa.attempt,
                maximum_attempts=pa.maximum_attempts,
                last_failure=_failure_message(pa.last_failure)
                if pa.HasField("last_failure")
                else None,
                last_worker_identity=pa.last_worker_identity or None,
                next_attempt_at=_time(pa, "next_attempt_schedule_time"),
                last_started_at=_time(pa, "last_started_time"),
                last_heartbeat_at=_time(pa, "last_heartbeat_time"),
            )
            for pa in raw.pending_activities
        ]
        if raw.HasField("pending_workflow_task"):
            task = raw.pending_workflow_task
            wf.workflow_task = _enum_name(
                PendingWorkflowTaskState.Name(task.state), "PENDING_WORKFLOW_TASK_STATE_"
            )
            wf.workflow_task_attempt = task.attempt
            if task.attempt > 1:
                wf.workflow_task_failure, wf.workflow_task_failure_cause = await _within(
                    _workflow_task_failure(handle, call_timeout), call_timeout
                )
        if not wf.pending_activities:
            wf.timer_fires_at = await _within(
                _running_timer(client, execution, call_timeout), call_timeout
            )
    except Unreachable as err:
        wf.error = str(err)
    return wf


async def _workflow_task_failure(
    handle: WorkflowHandle[Any, Any], call_timeout: float
) -> tuple[str, str]:
    """The error of the workflow task's last recorded failure, and its cause.

    Temporal records only the first failure of a run of retries; the rest repeat it.
    """
    failure = ("the worker failed it (its error is not in the history)", "unknown cause")
    async for event in handle.fetch_history_events(rpc_timeout=timedelta(seconds=call_timeout)):
        if event.HasField("workflow_task_failed_event_attributes"):
            failed = event.workflow_task_failed_event_attributes
            cause = _enum_name(
                WorkflowTaskFailedCause.Name(failed.cause), "WORKFLOW_TASK_FAILED_CAUSE_"
            )
            failure = (_failure_message(failed.failure), cause)
    return failure


async def _running_timer(
    client: Client, execution: WorkflowExecution, call_timeout: float
) -> datetime | None:
    """When the earliest timer that has neither fired nor been cancelled fires, if any."""
    handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
    timers: dict[str, datetime] = {}
    async for event in handle.fetch_history_events(rpc_timeout=timedelta(seconds=call_timeout)):
        if event.HasField("timer_started_event_attributes"):
            started = event.timer_started_event_attributes
            timers[started.timer_id] = (
                event.event_time.ToDatetime(tzinfo=UTC)
                + started.start_to_fire_timeout.ToTimedelta()
            )
        elif event.HasField("timer_fired_event_attributes"):
            timers.pop(event.timer_fired_event_attributes.timer_id, None)
        elif event.HasField("timer_canceled_event_attributes"):
            timers.pop(event.timer_canceled_event_attributes.timer_id, None)
    return min(timers.values(), default=None)


@dataclass
class Poller:
    """A worker the server has seen polling one task queue."""

    identity: str  # pid@hostname by default
    kinds: list[str]  # "workflow", "activity"
    last_access: datetime | None
    seconds_ago: float | None
    container: str | None  # the lab container it runs in, when it is one of ours
    live: bool
    why: str  # "polling", or why not: "killed (exit 137)", "paused (...)", "silent for 95 s"

    @property
    def name(self) -> str:
        return self.container or self.identity


@dataclass
class QueuePollers:
    task_queue: str
    pollers: list[Poller]
    error: str | None = None  # describe_task_queue did not answer

    @property
    def live(self) -> list[Poller]:
        return [p for p in self.pollers if p.live]

    def live_for(self, kind: str) -> list[Poller]:
        return [p for p in self.live if kind in p.kinds]

    @property
    def dead(self) -> list[Poller]:
        return [p for p in self.pollers if not p.live]


async def queue_pollers(
    client: Client,
    task_queue: str,
    *,
    containers: Sequence[ServiceState] = (),
    now: datetime | None = None,
    call_timeout: float = CALL_TIMEOUT,
) -> QueuePollers:
    """Who polls ``task_queue`` (workflow and activity tasks), and whether they still do.

    The server lists a poller for minutes after it was last seen, even after its
    worker was killed. A poller whose hostname is a lab container counts as live only
    while that container runs on the network; any other counts as live if seen within
    STALE_POLLER_SECONDS. Raises Unreachable when Temporal does not answer in time.
    """

    async def describe(kind: int) -> list[tuple[str, Timestamp | None]]:
        response = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=task_queue),
                task_queue_type=TaskQueueType.ValueType(kind),
            ),
            timeout=timedelta(seconds=call_timeout),
        )
        return [
            (p.identity, p.last_access_time if p.HasField("last_access_time") else None)
            for p in response.pollers
        ]

    kinds = {
        "workflow": TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        "activity": TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
    }
    answers = await _within(asyncio.gather(*(describe(k) for k in kinds.values())), call_timeout)
    now = now or datetime.now(UTC)
    seen: dict[str, Poller] = {}
    for kind, found in zip(kinds, answers, strict=True):
        for identity, stamp in found:
            last = stamp.ToDatetime(tzinfo=UTC) if stamp is not None else None
            poller = seen.get(identity)
            if poller is None:
                seen[identity] = _poller(identity, kind, last, containers, now)
            else:
                poller.kinds.append(kind)
                if last and (poller.last_access is None or last > poller.last_access):
                    fresher = _poller(identity, kind, last, containers, now)
                    fresher.kinds = poller.kinds
                    seen[identity] = fresher
    return QueuePollers(task_queue=task_queue, pollers=sorted(seen.values(), key=_poller_order))


def _poller_order(p: Poller) -> tuple[bool, str]:
    return (not p.live, p.identity)


def _poller(
    identity: str,
    kind: str,
    last: datetime | None,
    containers: Sequence[ServiceState],
    now: datetime,
) -> Poller:
    ago = (now - last).total_seconds() if last else None
    host = identity.rpartition("@")[2]
    owner = next((c for c in containers if c.owns(host)), None)
    if owner is not None:
        live = owner.up
        if live:
            why = "polling"
        elif owner.state == "running":
            why = "disconnected from the lab's networks"
        elif owner.state == "paused":
            why = "paused (it holds its poll open and takes nothing)"
        else:
            why = owner.label
    elif ago is not None and ago > STALE_POLLER_SECONDS:
        live, why = False, f"silent for {ago:.0f} s"
    else:
        live, why = True, "polling"
    return Poller(
        identity=identity,
        kinds=[kind],
        last_access=last,
        seconds_ago=ago,
        container=owner.name if owner else None,
        live=live,
        why=why,
    )


@dataclass
class TemporalView:
    address: str | None
    ui_url: str | None
    workflows: list[OpenWorkflow] = field(default_factory=list)
    queues: list[QueuePollers] = field(default_factory=list)
    error: str | None = None


async def temporal_view(
    stack: Stack, containers: Sequence[ServiceState], *, call_timeout: float = CALL_TIMEOUT
) -> TemporalView:
    """Open workflows and pollers; ``error`` says why they are missing, if they are."""
    try:
        address, ui = stack.temporal_address, stack.ui_url
    except StackError:
        return TemporalView(None, None, error=f"{TEMPORAL_SILENT}: it publishes no port")
    view = TemporalView(address, ui)
    try:
        client = await connect_temporal(address, call_timeout=call_timeout)
        view.workflows = await open_workflows(client, call_timeout=call_timeout)
        queues = list(LAB_TASK_QUEUES)
        queues += sorted({w.task_queue for w in view.workflows} - set(queues))
        now = datetime.now(UTC)
        view.queues = list(
            await asyncio.gather(
                *(
                    _queue_or_error(
                        client, q, containers=containers, now=now, call_timeout=call_timeout
                    )
                    for q in queues
                )
            )
        )
    except Unreachable as err:
        view.error = str(err)
    return view


async def _queue_or_error(
    client: Client,
    task_queue: str,
    *,
    containers: Sequence[ServiceState],
    now: datetime,
    call_timeout: float,
) -> QueuePollers:
    try:
        return await queue_pollers(
            client, task_queue, containers=containers, now=now, call_timeout=call_timeout
        )
    except Unreachable as err:
        return QueuePollers(task_queue, [], error=str(err))


# --- the bank -----------------------------------------------------------------


@dataclass
class BankView:
    url: str | None
    balances: dict[str, int] = field(default_factory=dict)
    faults: dict[str, Fault | None] = field(default_factory=dict)
    invariants_ok: bool | None = None
    invariants: list[str] = field(default_factory=list)  # the verdicts, one a line
    outcomes: dict[str, int] = field(default_factory=dict)  # completed: 3, in flight: 1...
    error: str | None = None


async def bank_view(stack: Stack, *, call_timeout: float = CALL_TIMEOUT) -> BankView:
    """Balances, faults and the ledger invariants (in-flight transfers allowed)."""
    try:
        url = stack.bank_url
    except StackError:
        return BankView(None, error=f"{BANK_SILENT}: it publishes no port")
    view = BankView(url)
    try:
        async with BankClient(url, timeout=call_timeout) as bank:
            accounts = await _within(bank.accounts(), call_timeout, BANK_SILENT)
            view.balances = {a.id: a.balance for a in accounts}
            faults = await _within(bank.faults(), call_timeout, BANK_SILENT)
            view.faults = {"withdraw": faults.withdraw, "deposit": faults.deposit}
            report = await _within(check_bank(bank, settled=False), 3 * call_timeout, BANK_SILENT)
            view.invariants_ok = report.ok
            view.invariants = report.lines()
            view.outcomes = dict(report.counts())
    except Unreachable as err:
        view.error = str(err)
    except Exception as err:  # refused, reset, DNS, an error answer
        view.error = f"{BANK_SILENT}: {err or type(err).__name__}"
    return view


# --- everything ---------------------------------------------------------------


@dataclass
class StatusReport:
    project: str
    services: list[ServiceState]
    temporal: TemporalView
    bank: BankView
    taken_at: datetime
    # Every lever on now (crashlab/levers.py), each with the command that undoes it.
    levers: list[str] = field(default_factory=list)

    def warnings(self) -> list[str]:
        """What needs the learner's attention, worst first; each a paragraph."""
        return _warnings(self)


async def collect(stack: Stack, *, call_timeout: float = CALL_TIMEOUT) -> StatusReport:
    """The whole status. Raises StackError only when Docker itself cannot be asked."""
    services = service_states(stack)
    temporal, bank = await asyncio.gather(
        temporal_view(stack, services, call_timeout=call_timeout),
        bank_view(stack, call_timeout=call_timeout),
    )
    report = StatusReport(stack.project, services, temporal, bank, datetime.now(UTC))
    report.levers = await asyncio.to_thread(levers_on_now, stack, bank, services)
    return report


def levers_on_now(stack: Stack, bank: BankView, services: Sequence[ServiceState]) -> list[str]:
    """Each lever on now and how to undo it, from what the rest of the status has read
    already: the containers, their connections, the fault switch."""
    faults = None if bank.error else FaultState(**bank.faults)
    containers = [
        Container(s.container_id, s.name, s.service, s.state, s.health, s.exit_code)
        for s in services
    ]
    connected = {s.container_id: s.connected for s in services if s.connected is not None}
    lab = LabNow(stack, faults=faults, containers=containers, connected=connected)
    try:
        found = [lever for kind in CATALOGUE for lever in kind.on_now(lab)]
    except StackError as err:
        return [f"(Docker did not answer: {err})"]
    return [f"{lever.describe()}: undo with `{lever.undo_hint()}`" for lever in found]


def unserved_queues(report: StatusReport) -> dict[str, tuple[QueuePollers, list[OpenWorkflow]]]:
    """Task queues that open workflows wait on and no live worker polls, with those
    workflows. A queue Temporal did not describe is left out (unknown is not empty)."""
    queues = {q.task_queue: q for q in report.temporal.queues}
    waiting: dict[str, list[OpenWorkflow]] = {}
    for wf in report.temporal.workflows:
        waiting.setdefault(wf.task_queue, []).append(wf)
    out = {}
    for queue, workflows in waiting.items():
        q = queues.get(queue)
        if q is None or q.error:
            continue
        needs_activity = any(w.needs_activity_worker for w in workflows)
        if q.live_for("workflow") and (not needs_activity or q.live_for("activity")):
            continue
        out[queue] = (q, workflows)
    return out


def _warnings(report: StatusReport) -> list[str]:
    out: list[str] = []
    by_service = {s: [c for c in report.services if c.service == s] for s in SERVICES}
    workers = by_service["worker"]
    for c in report.services:
        if c.state == "running" and c.connected is False:
            reach = (
                "the worker and the starter cannot reach it (this machine still can: its "
                "published port is on its control network, which stays connected)"
                if c.service == "bank"
                else "nothing reaches it and it reaches nothing"
            )
            out.append(
                f"{c.name} is disconnected from the lab's networks: {reach}. "
                f"`make reconnect SERVICE={c.service}` plugs it back in."
            )
    for queue, (q, workflows) in unserved_queues(report).items():
        ids = ", ".join(w.workflow_id for w in workflows[:3])
        more = f" and {len(workflows) - 3} more" if len(workflows) > 3 else ""
        wait = "waits" if len(workflows) == 1 else "wait"
        if queue == PRINT_NUMBERS_TASK_QUEUE_NAME:
            # Module 1's worker is the learner's own process, never the lab's container.
            out.append(
                f"{ids}{more} {wait} on task queue {queue}, and no process polls it: its "
                "worker is the process that started it, and that one stopped. Run it "
                "again (`uv run run_workflow.py` in exercises/module01, or `make "
                "print-numbers`) and it goes on at the next number."
            )
        elif queue in LAB_TASK_QUEUES:
            reasons = sorted({f"{p.name} is {p.why}" for p in q.dead})
            if not reasons and workers:
                reasons = [f"{c.name} is {c.label}" for c in workers if not c.up]
            why = "; ".join(reasons) or "no worker has polled it"
            out.append(
                f"{ids}{more} {wait} on task queue {queue}, and no live worker polls it "
                f"({why}). Temporal keeps listing a gone worker's poller for a few minutes, "
                "but nothing takes the work. The workflow is safe in Temporal and resumes "
                "when a worker polls again: `make start SERVICE=worker` (or unpause / "
                "reconnect it)."
            )
        else:
            close = difflib.get_close_matches(queue, LAB_TASK_QUEUES, n=1, cutoff=0.5)
            hint = f" Did you mean {close[0]}?" if close else ""
            out.append(
                f"{ids}{more} {wait} on task queue {queue!r}, and no worker polls it. "
                "Temporal does not check that any worker listens on a task queue: the "
                "workflow waits there, forever, until one does. This is the tutorial's "
                "task-queue mismatch: the starter and the worker must use the same name "
                f"(worker/shared.py); the lab's queues are {' and '.join(LAB_TASK_QUEUES)}."
                f"{hint} Fix: terminate it (Temporal UI, or `temporal workflow terminate "
                f"--workflow-id <id>`) and start it again on the right queue, or run a "
                f"worker on {queue!r}."
            )
    for wf in report.temporal.workflows:
        if wf.workflow_task_failure is None:
            continue
        stuck = (
            "Temporal keeps retrying the task, so the workflow shows Running but makes no "
            "progress; nothing is lost."
        )
        if wf.workflow_task_failure_cause == "non deterministic error":
            out.append(
                f"{wf.workflow_id} hit a NON-DETERMINISM ERROR: {wf.workflow_task_failure}. "
                "The worker's workflow code no longer does what this workflow's history "
                f"recorded: the code was changed while it ran. {stuck} Undo the change, or "
                "put it behind workflow.patched(...) so that running workflows keep the old "
                "path, and restart the worker. `make replay` checks every workflow against "
                "the code before you restart."
            )
        else:
            out.append(
                f"{wf.workflow_id}'s workflow task keeps failing: {wf.workflow_task_failure} "
                f"({wf.workflow_task_failure_cause}). The worker cannot run the workflow's "
                f"code on its history. {stuck} Fix the workflow code (or the input it was "
                "started with: terminate it and start it again) and restart the worker."
            )
    if report.bank.invariants_ok is False:
        out.append(
            "The ledger breaks an invariant (see Ledger below): money was lost, created or "
            "moved twice."
        )
    return out


# --- rendering ----------------------------------------------------------------


def render(report: StatusReport) -> list[str]:
    """The status screen, as lines."""
    now = report.taken_at
    t = report.temporal
    lines = [f"Lab {report.project}" + (f" - Temporal UI {t.ui_url}" if t.ui_url else "")]

    lines += ["", "Services"]
    names = {c.service for c in report.services}
    for c in report.services:
        lines.append(f"  {c.service:<9} {c.name:<28} {c.label}")
    for service in SERVICES:
        if service not in names:
            lines.append(f"  {service:<9} {'-':<28} no container (not created: `make up`)")

    lines += ["", "Levers on now"]
    lines += [f"  {text}" for text in report.levers] or ["  none: nothing is broken on purpose"]

    stranded = unserved_queues(report)
    lines += ["", "Open workflows"]
    if t.error:
        lines.append(f"  {_temporal_error(t.error, report.services)}")
    elif not t.workflows:
        lines.append("  none running")
    for wf in t.workflows:
        age = f", started {_age(wf.started_at, now)} ago" if wf.started_at else ""
        lines.append(f"  {wf.workflow_type} {wf.workflow_id}  (task queue {wf.task_queue}{age})")
        lines += [f"    - {where}" for where in wf.where(now)]
        if wf.task_queue in stranded:
            lines.append(f"    !! no live worker polls {wf.task_queue}: see the end of this screen")
        if t.ui_url:
            lines.append(f"    UI: {t.ui_url}/namespaces/default/workflows/{wf.workflow_id}")

    lines += ["", "Workers polling each task queue (as Temporal sees them)"]
    if t.error:
        lines.append("  (unknown: Temporal does not answer)")
    width = max((len(q.task_queue) for q in t.queues), default=0)
    for q in t.queues:
        if q.error:
            lines.append(f"  {q.task_queue:<{width}}  (no answer: {q.error})")
        elif not q.pollers:
            lines.append(f"  {q.task_queue:<{width}}  nobody")
        for i, p in enumerate(q.pollers):
            name = q.task_queue if i == 0 else ""
            where = f" ({p.container})" if p.container else ""
            seen = f", last seen {p.seconds_ago:.0f} s ago" if p.seconds_ago is not None else ""
            state = "polling" if p.live else f"NOT POLLING, {p.why}"
            lines.append(
                f"  {name:<{width}}  {p.identity}{where} [{'+'.join(p.kinds)}]: {state}{seen}"
            )

    b = report.bank
    lines += ["", "Bank" + (f" ({b.url})" if b.url else "")]
    if b.error:
        lines.append(f"  {_bank_error(b.error, report.services)}")
    else:
        cells = [f"{account} ${balance}" for account, balance in b.balances.items()]
        lines += ["  " + "   ".join(cells[i : i + 5]) for i in range(0, len(cells), 5)]
        active = {op: f for op, f in b.faults.items() if f is not None}
        lines.append(
            "  faults: "
            + (", ".join(f"{op} {describe_fault(f)}" for op, f in active.items()) or "none")
        )
        lines += ["", "Ledger invariants (transfers still running may be in flight)"]
        lines += [f"  {line}" for line in b.invariants]
        if b.outcomes:
            lines.append(
                "  transfers: " + ", ".join(f"{n} {what}" for what, n in sorted(b.outcomes.items()))
            )

    warnings = report.warnings()
    if warnings:
        lines.append("")
        for warning in warnings:
            lines += _wrap("!! ", warning)
    return lines


def _temporal_error(error: str, services: Sequence[ServiceState]) -> str:
    return f"{error}.{_state_hint('temporal', services)}"


def _bank_error(error: str, services: Sequence[ServiceState]) -> str:
    return f"{error}.{_state_hint('bank', services)}"


def _state_hint(service: str, services: Sequence[ServiceState]) -> str:
    """ " <container> is paused: `make unpause SERVICE=<service>`." or ""."""
    found = [c for c in services if c.service == service]
    down = [c for c in found if not c.up]
    if not found:
        return f" There is no {service} container: `make up`."
    if not down:
        return ""
    c = down[0]
    if c.state == "paused":
        return f" {c.name} is paused: `make unpause SERVICE={service}`."
    if c.state == "running":
        return f" {c.name} is disconnected: `make reconnect SERVICE={service}`."
    return f" {c.name} is {c.label}: `make start SERVICE={service}`."


def _wrap(prefix: str, text: str, width: int = 100) -> list[str]:
    words, lines, line = text.split(), [], prefix
    for word in words:
        if len(line) + len(word) + 1 > width and line.strip() != prefix.strip():
            lines.append(line.rstrip())
            line = prefix + "  "
        line += word + " "
    lines.append(line.rstrip())
    return lines


def _age(earlier: datetime, later: datetime) -> str:
    seconds = max(0.0, (later - earlier).total_seconds())
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"


def _failure_message(failure: Failure) -> str:
    """The failure's message. When it is too big, the server keeps it as the cause of a
    "Failure exceeds size limit." wrapper (the Temporal UI shows the wrapper): unwrap it."""
    while failure.message.startswith("Failure exceeds size limit") and failure.HasField("cause"):
        failure = failure.cause
    return failure.message


def _enum_name(name: str, prefix: str) -> str:
    return name.removeprefix(prefix).replace("_", " ").lower()


def _time(message: Message, name: str) -> datetime | None:
    if not message.HasField(name):
        return None
    stamp: Timestamp = getattr(message, name)
    return stamp.ToDatetime(tzinfo=UTC)
