"""The soak's chaos: each planned fault pulled at its time (a lever of the catalogue,
crashlab/levers.py), held, undone, and the lab healthy and transfers ending again before the
next one strikes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from crashlab.levers import BankFault, restore
from crashlab.levers import in_thread as lever
from crashlab.soak.clock import PlannedClock, Timeline
from crashlab.soak.connections import Connections
from crashlab.soak.plan import FaultSpec, Schedule
from crashlab.soak.records import FaultRecord
from crashlab.soak.traffic import Traffic
from crashlab.stack import Stack, StackError

# After a fault is undone, the next one waits until transfers end again, this long at most.
RECOVERY_WAIT = 90.0


class Chaos:
    def __init__(
        self,
        stack: Stack,
        schedule: Schedule,
        records: list[FaultRecord],
        traffic: Traffic,
        conns: Connections,
        timeline: Timeline,
        clock: PlannedClock,
        duration: float,
    ) -> None:
        self.stack = stack
        self.schedule = schedule
        self.records = records
        self.traffic = traffic
        self.conns = conns
        self.timeline = timeline
        self.clock = clock
        self.duration = duration
        self.current: FaultRecord | None = None  # the fault on now

    async def run(self) -> None:
        planned_end = 0.0
        for record in self.records:
            spec = record.spec
            self.clock.segment(planned_end, spec.at - planned_end)
            await self.clock.reach(spec.at, self._over)
            if self._over():
                break
            await self._fault(record)
            planned_end = spec.at + spec.hold
        self.clock.segment(planned_end, self.schedule.length - planned_end)
        # The probes left and the bursts of faults that never came still start (unless
        # the run was cut).
        traffic = self.traffic
        traffic.credit += traffic.probes + sum(f.burst for f in self.records if f.started is None)
        traffic.probes = 0
        skipped = sum(f.started is None for f in self.records)
        if skipped:
            self.timeline.log(f"{skipped} planned fault(s) not injected.")
        elif self.records:
            self.timeline.log("Every planned fault was injected and undone; the transfers finish.")

    def _over(self) -> bool:
        if self.traffic.cut:
            return True
        if self.timeline.now() > self.duration:
            self.traffic.cut = True
            self.timeline.log(f"The --duration cap ({self.duration:g} s) is reached.")
            return True
        # Every transfer started and ended: faults would hit an idle lab.
        return self.traffic.all_ended()

    async def _fault(self, record: FaultRecord) -> None:
        spec, now, log = record.spec, self.timeline.now, self.timeline.log
        total = len(self.records)
        self.current = record
        record.started = now()
        self.traffic.credit += record.burst
        await self.traffic.burst_accepted()
        record.in_flight = self.traffic.in_flight()
        log(
            f"fault {spec.number}/{total}: {spec.describe()} "
            f"({record.in_flight} transfers in flight)"
        )
        undo: Callable[[], Awaitable[None]] | None = None
        try:
            undo = await self._inject(spec)
            record.injected = now()
            self.clock.segment(spec.at, spec.hold)
            await asyncio.sleep(spec.hold)
        except Exception as err:
            record.error = f"could not inject it: {err}"
        finally:
            self.clock.segment(spec.at + spec.hold, 0.0)
            try:
                if undo is not None:
                    record.undone = now()
                    self.traffic.release_probe()
                    await undo()
                await self._healthy(spec)
            except Exception as err:
                record.error = f"could not undo it: {err}"
                log(f"fault {spec.number}: {record.error}; putting every service back")
                try:
                    await restore(self.stack)
                except Exception as again:
                    # The lab cannot be put right: no more faults, no more transfers.
                    record.error += f"; nor put every service back: {again}"
                    self.traffic.cut = True
            record.ended = now()
            self.current = None
        if record.error is None and record.undone is not None:
            healthy = record.ended - record.undone
            flowing = await self.traffic.ending_again(record.undone, RECOVERY_WAIT)
            log(
                f"fault {spec.number}/{total} undone; every service healthy {healthy:.1f} s "
                "later, "
                + (
                    f"transfers ending again {flowing:.1f} s after the undo"
                    if flowing is not None
                    else "no transfer ended after it"
                )
            )

    async def _inject(self, spec: FaultSpec) -> Callable[[], Awaitable[None]]:
        """Pulls the lever; returns what puts it back."""
        pulled = spec.lever(await self._which(spec))
        if isinstance(pulled, BankFault):
            # Through the soak's own bank client, which follows a bank that moved ports.
            await self.conns.call_bank(lambda b: b.set_fault(pulled.operation, pulled.fault), 15)

            async def clear() -> None:
                await self.conns.call_bank(lambda bank: bank.clear_faults(), within=60)

            return clear
        await lever(pulled.pull, self.stack)

        async def undo() -> None:
            await lever(pulled.undo, self.stack)

        return undo

    async def _which(self, spec: FaultSpec) -> str:
        """worker-2 -> the second worker container's number ("all" for the others)."""
        if not spec.target.startswith("worker-"):
            return "all"
        found = await lever(self.stack.containers, "worker")
        if not found:
            raise StackError("no worker container exists")
        n = int(spec.target.removeprefix("worker-"))
        return found[(n - 1) % len(found)].name.rsplit("-", 1)[-1]

    async def _healthy(self, spec: FaultSpec) -> None:
        """After the undo: the service it touched healthy again (all of them after a
        Temporal fault: the workers depend on it), and our clients on the right ports."""
        service = spec.service
        if service == "temporal":
            for repaired in await restore(self.stack):
                self.timeline.log(f"  also: {repaired}")
        elif service is not None:
            await lever(self.stack.wait_healthy, service, timeout=120)
        if service in ("temporal", "bank"):
            await self.conns.temporal_failed(now=True)
            await self.conns.bank_failed(now=True)
