"""The soak's traffic: the transfers, started in order (a burst when a fault strikes, the
others at their planned times) and each followed until its workflow ends, across Temporal
restarts and pauses."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from datetime import timedelta

from temporalio.client import WorkflowFailureError
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from crashlab.soak.clock import PlannedClock, Timeline
from crashlab.soak.connections import Connections
from crashlab.soak.plan import Releases
from crashlab.soak.records import SoakResult, TransferRecord
from crashlab.transfers import transfer_id
from worker.shared import MONEY_TRANSFER_TASK_QUEUE_NAME, MONEY_TRANSFER_WORKFLOW


class Traffic:
    def __init__(
        self,
        result: SoakResult,
        releases: Releases,
        conns: Connections,
        timeline: Timeline,
        clock: PlannedClock,
        concurrency: int,
    ) -> None:
        self.result = result
        self.releases = releases
        self.conns = conns
        self.timeline = timeline
        self.clock = clock
        self.credit = 0  # transfers to start at once: a fault's burst
        self.probes = releases.probes  # see plan_releases
        self.cut = False  # no more transfers (the --duration cap, or a lab beyond repair)
        self.gate = asyncio.Semaphore(concurrency)
        self.tasks: list[asyncio.Task[None]] = []
        self.ends: list[float] = []
        self.last_end = -1.0  # when the latest transfer ended (seconds since the start)
        self.client_errors: Counter[str] = Counter()

    def stopped(self) -> bool:
        return self.cut

    def in_flight(self) -> int:
        return sum(t.status == "running" for t in self.result.transfers)

    def all_ended(self) -> bool:
        transfers = self.result.transfers
        return bool(transfers) and all(t.finished for t in transfers)

    def release_probe(self) -> None:
        """Nothing in flight as a fault is undone: one kept-back transfer starts now, so
        something runs to show the recovery."""
        if self.in_flight() == 0 and self.probes > 0:
            self.probes, self.credit = self.probes - 1, self.credit + 1

    async def dispatch(self) -> None:
        """Starts the transfers in order: a burst when a fault asks for one (self.credit),
        the others at their planned times (plan_releases)."""
        trickle = self.releases.trickle
        next_ = 0  # the next trickle time
        for record in self.result.transfers:
            due = trickle[next_] if next_ < len(trickle) else math.inf
            await self.clock.reach(due, lambda: self.cut or self.credit > 0)
            if self.cut:
                return
            if self.credit > 0:
                self.credit -= 1
            else:
                next_ += 1
            await self.gate.acquire()
            if self.stopped():  # cut while waiting for a free slot
                self.gate.release()
                return
            record.started, record.status = self.timeline.now(), "running"
            self.tasks.append(asyncio.create_task(self._transfer(record)))
            self.result.peak_in_flight = max(self.result.peak_in_flight, self.in_flight())

    async def burst_accepted(self) -> None:
        """Until the burst's transfers are started (Temporal accepted them), 10 s at most:
        then the lever lands on them in flight."""
        deadline = self.timeline.now() + 10
        while self.timeline.now() < deadline:
            running = [t for t in self.result.transfers if t.status == "running"]
            if self.credit == 0 and all(t.accepted is not None for t in running):
                return
            await asyncio.sleep(0.05)

    async def ending_again(self, undone: float, within: float) -> float | None:
        """Seconds from ``undone`` until a transfer ended after it; None when nothing can
        end (none in flight, none about to start) or none did within ``within`` seconds."""
        deadline = self.timeline.now() + within
        while self.last_end < undone:
            # Nothing in flight and nothing about to start (no probe left): no end to await.
            idle = self.in_flight() == 0 and self.credit == 0
            if idle or self.timeline.now() > deadline:
                if not idle:
                    self.result.notes.append(
                        f"No transfer ended within {within:g} s of undoing the fault at "
                        f"{undone:.1f} s."
                    )
                return None
            await asyncio.sleep(0.1)
        return self.last_end - undone

    async def _transfer(self, record: TransferRecord) -> None:
        try:
            await self._start(record)
            await self._follow(record)
        finally:
            self.gate.release()

    async def _start(self, record: TransferRecord) -> None:
        """Starts the workflow, retrying while Temporal is away (a repeat is harmless)."""
        while True:
            record.start_attempts += 1
            try:
                client = await self.conns.client()
                await asyncio.wait_for(
                    client.start_workflow(
                        MONEY_TRANSFER_WORKFLOW,
                        record.spec.details(),
                        id=transfer_id(record.spec.reference_id),
                        task_queue=MONEY_TRANSFER_TASK_QUEUE_NAME,
                        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                        rpc_timeout=timedelta(seconds=5),
                    ),
                    8,
                )
            except WorkflowAlreadyStartedError:
                pass  # an earlier try got through, its answer did not
            except Exception as err:
                self.client_errors[type(err).__name__] += 1
                await self.conns.temporal_failed()
                await asyncio.sleep(1.0)
                continue
            record.accepted = self.timeline.now()
            return

    async def _follow(self, record: TransferRecord) -> None:
        """Waits for the workflow's end, across Temporal restarts and pauses."""
        workflow_id = transfer_id(record.spec.reference_id)
        while True:
            try:
                client = await self.conns.client()
                handle = client.get_workflow_handle(workflow_id, result_type=str)
                await asyncio.wait_for(handle.result(rpc_timeout=timedelta(seconds=20)), 20)
                record.status = "completed"
            except WorkflowFailureError as err:
                cause = err.cause
                if isinstance(cause, ApplicationError) or cause is None:
                    record.status = "failed"
                else:
                    record.status = type(cause).__name__.removesuffix("Error").lower()
                record.message = str(cause or err)
            except TimeoutError:
                continue  # still running (or Temporal frozen): ask again
            except Exception as err:
                self.client_errors[type(err).__name__] += 1
                await self.conns.temporal_failed()
                await asyncio.sleep(1.0)
                continue
            record.ended = self.timeline.now()
            self.ends.append(record.ended)
            self.last_end = max(self.last_end, record.ended)
            return
