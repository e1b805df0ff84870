"""One soak run, assembled from its parts: the plan (crashlab.soak.plan), the traffic, the
chaos, the observers, the settling at the end and the verdicts. This module only gets
the lab ready, starts the parts, and puts the lab back as it was."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from datetime import UTC, datetime

from crashlab.constants import SERVICES
from crashlab.invariants import check_bank
from crashlab.levers import in_thread as lever
from crashlab.levers import restore
from crashlab.soak.chaos import Chaos
from crashlab.soak.clock import PlannedClock, Say, Timeline
from crashlab.soak.connections import Connections
from crashlab.soak.observers import MoneyWatch, Progress
from crashlab.soak.plan import NORMAL, SoakConfig, SoakError, plan_releases, plan_transfers
from crashlab.soak.records import FaultRecord, SoakResult, TransferRecord
from crashlab.soak.settle import settle
from crashlab.soak.traffic import Traffic
from crashlab.soak.verdict import fresh_invariants
from crashlab.stack import Stack
from crashlab.temporal import Unreachable

__all__ = ["Say", "Soak", "soak"]


class Soak:
    def __init__(self, stack: Stack, config: SoakConfig, say: Say, *, scale_back: bool) -> None:
        self.stack = stack
        self.scale_back = scale_back
        self.cfg = config
        self.say = say
        self.conns = Connections(stack)
        self.schedule = config.schedule()
        self.result = SoakResult(project=stack.project, config=config)
        self.result.run_id = uuid.uuid4().hex[:6]
        releases = plan_releases(config.seed, config.transfers, self.schedule, config.concurrency)
        self.result.faults = [
            FaultRecord(spec, burst=burst)
            for spec, burst in zip(self.schedule.faults, releases.bursts, strict=True)
        ]
        self.result.invariants = fresh_invariants()
        self.timeline = Timeline(say)
        clock = PlannedClock()
        self.traffic = Traffic(
            self.result, releases, self.conns, self.timeline, clock, config.concurrency
        )
        self.chaos = Chaos(
            stack,
            self.schedule,
            self.result.faults,
            self.traffic,
            self.conns,
            self.timeline,
            clock,
            config.duration,
        )
        self.watch = MoneyWatch(
            self.conns,
            self.result.invariants,
            self.timeline,
            lambda: self.chaos.current,
            read_every=config.read_every,
            ledger_every=config.ledger_every,
            trace=self.result.trace,
        )
        self.progress = Progress(
            self.result,
            self.watch,
            lambda: self.chaos.current,
            self.timeline,
            config.progress_every,
        )
        self.original_workers = 0
        self.touched = False

    async def run(self) -> SoakResult:
        self.result.started_at = datetime.now(UTC).isoformat(timespec="seconds")
        prepared = False
        try:
            await self._prepare()
            prepared = True
            self.timeline.start()
            await self._soak()
        except asyncio.CancelledError:
            # Ctrl+C: the lab is put back below, and the report says what was seen.
            self.result.interrupted = True
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        finally:
            if self.touched:
                await self._put_back()
            if not prepared:
                await self.conns.aclose()
        if not prepared:  # interrupted while getting ready: nothing ran
            return self.result
        if not self.result.interrupted:
            await settle(self.result, self.conns, self.watch, self.traffic.ends, self.timeline)
        self.result.seconds = self.timeline.now()
        self._notes()
        await self.conns.aclose()
        return self.result

    async def _prepare(self) -> None:
        stack, cfg = self.stack, self.cfg
        for service in SERVICES:
            if not await lever(stack.containers, service):
                raise SoakError(
                    f"The lab is not running in Compose project {stack.project!r}: there is no "
                    f"{service} container. Start it with `make up`, or use --own-lab."
                )
        for repaired in await restore(stack):
            self.say(f"  {repaired} (left over from an interrupted run?)")
        try:
            bank = await self.conns.bank()
            await bank.clear_faults()
            baseline = await check_bank(bank, settled=False)
            accounts = await bank.accounts()
        except Exception as err:
            raise SoakError(f"The bank does not answer: {err}") from err
        if not baseline.ok:
            broken = "; ".join(line for line in baseline.lines() if line.startswith("FAIL"))
            raise SoakError(
                f"The bank's ledger breaks its invariants before the soak starts ({broken}). "
                "`make clean up` starts it afresh, or use --own-lab."
            )
        # All the money there is: the balances plus what is on its way between accounts.
        self.watch.ceiling = baseline.expected_total + baseline.in_flight
        balances = {a.id: a.balance for a in accounts}
        self.result.transfers = [
            TransferRecord(spec)
            for spec in plan_transfers(
                cfg.seed,
                cfg.transfers,
                balances,
                run_id=self.result.run_id,
                failing=cfg.failing,
                one_attempt=cfg.one_attempt,
            )
        ]
        self.original_workers = len(await lever(stack.containers, "worker"))
        self.touched = True  # from here on, the lab is put back whatever happens
        if self.original_workers != cfg.workers:
            self.say(f"Scaling the worker service to {cfg.workers} containers...")
            await self._scale(cfg.workers)
        try:
            await self.conns.client()
        except Unreachable as err:
            raise SoakError(str(err)) from err
        faults = self.schedule.faults
        self.say(
            f"Soak {self.result.run_id} on project {stack.project}: seed {cfg.seed}, "
            f"{cfg.transfers} transfers (concurrency {cfg.concurrency}), {cfg.workers} workers, "
            f"{len(faults)} faults over about {self.schedule.length:.0f} s of planned time "
            "(plus restarts)."
        )
        for spec in faults:
            self.say(f"  planned at +{spec.at:5.1f} s: {spec.number:>2}. {spec.describe()}")

    async def _scale(self, workers: int) -> None:
        await lever(
            self.stack.compose,
            "up",
            "--detach",
            "--no-deps",
            "--no-recreate",
            "--scale",
            f"worker={workers}",
            "worker",
        )
        await lever(self.stack.wait_healthy, "worker", timeout=120)

    async def _soak(self) -> None:
        traffic = self.traffic
        watcher = asyncio.create_task(self.watch.run())
        progress = asyncio.create_task(self.progress.run())
        dispatcher = asyncio.create_task(traffic.dispatch())
        try:
            await self.chaos.run()
            deadline = time.monotonic() + self.schedule.length + self.cfg.settle
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(dispatcher), _left(deadline))
            if traffic.tasks:
                await asyncio.wait(traffic.tasks, timeout=_left(deadline))
            self.timeline.log(
                f"{sum(t.finished for t in self.result.transfers)} transfers ended; "
                "stopping the watchers."
            )
        finally:
            for task in (*traffic.tasks, dispatcher, watcher, progress):
                task.cancel()
            await asyncio.gather(
                *traffic.tasks, dispatcher, watcher, progress, return_exceptions=True
            )

    async def _put_back(self) -> None:
        """Every service up and healthy, no bank fault, as many workers as before."""
        try:
            for repaired in await restore(self.stack):
                self.say(f"  put back: {repaired}")
            if (
                self.scale_back
                and self.original_workers
                and self.original_workers != self.cfg.workers
            ):
                self.say(f"Scaling the worker service back to {self.original_workers}.")
                await self._scale(self.original_workers)
            await self.conns.bank_failed(now=True)
            await self.conns.call_bank(lambda bank: bank.clear_faults(), within=60)
        except Exception as err:
            self.result.notes.append(f"Could not put the lab back as it was: {err}")
            self.say(f"Could not put the lab back as it was: {err}")

    def _notes(self) -> None:
        notes, watch = self.result.notes, self.watch
        errors = self.traffic.client_errors
        if errors:
            listed = ", ".join(f"{n} {kind}" for kind, n in errors.most_common())
            notes.append(
                f"This machine's Temporal client retried {sum(errors.values())} "
                f"calls while Temporal was away or frozen ({listed})."
            )
        if watch.reads or watch.unanswered_reads:
            notes.append(
                f"The balances were read {watch.reads} times and the ledger checked "
                f"{watch.ledger_checks} times during the run; {watch.unanswered_reads} reads "
                "got no answer (the bank killed, frozen or cut off)."
            )
        running = sum(t.status == "running" for t in self.result.transfers)
        if running and self.result.interrupted:
            notes.append(
                f"{running} transfers were still running when the soak was interrupted; "
                "they finish by themselves (`make status` shows them)."
            )
        not_started = sum(t.started is None for t in self.result.transfers)
        if not_started and not self.result.interrupted:
            notes.append(
                f"{not_started} transfers were never started: the run was cut short "
                "(--duration, or the transfers before them did not end within --settle)."
            )
        once = [t for t in self.result.transfers if t.spec.max_attempts == 1]
        if once:
            notes.append(
                f"{len(once)} transfers had max_attempts=1 "
                f"({sum(t.spec.kind == NORMAL for t in once)} of them normal transfers)."
            )


def _left(deadline: float) -> float:
    return max(0.1, deadline - time.monotonic())


async def soak(
    stack: Stack, config: SoakConfig, say: Say = print, *, scale_back: bool = True
) -> SoakResult:
    """Runs the soak on a running lab; the lab is put back as it was, whatever happens
    (``scale_back=False``: the extra workers stay, for a lab about to be thrown away).

    Raises SoakError when it cannot start (no lab, an already broken ledger...).
    """
    return await Soak(stack, config, say, scale_back=scale_back).run()
