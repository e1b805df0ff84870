"""The soak's observers: the money watched all along (balances every half second, the
ledger every few seconds, money in flight allowed), and a progress line for people."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence

from bank.models import Account
from crashlab.invariants import LedgerReport, check_bank
from crashlab.soak.clock import Timeline
from crashlab.soak.connections import Connections
from crashlab.soak.records import FaultRecord, Invariant, SoakResult, Trace
from crashlab.soak.verdict import CEILING_READ, DURING, NO_NEGATIVE_READ


class MoneyWatch:
    def __init__(
        self,
        conns: Connections,
        invariants: Sequence[Invariant],
        timeline: Timeline,
        current: Callable[[], FaultRecord | None],
        *,
        read_every: float,
        ledger_every: float,
        trace: Trace | None = None,
    ) -> None:
        self.conns = conns
        self.invariants = {inv.name: inv for inv in invariants}
        self.timeline = timeline
        self.current = current  # the fault on now, to say when a violation was seen
        self.read_every = read_every
        self.ledger_every = ledger_every
        self.ceiling = 0  # all the money there is (set once the bank has been read)
        self.reads = self.unanswered_reads = self.ledger_checks = 0
        self.trace = trace if trace is not None else Trace()

    async def run(self) -> None:
        next_ledger = 0.0
        now = self.timeline.now
        while True:
            try:
                bank = await self.conns.bank()
                accounts = await bank.accounts()
            except Exception:
                self.unanswered_reads += 1
                await self.conns.bank_failed()
            else:
                self.reads += 1
                self.check_read(accounts)
                if now() >= next_ledger:
                    next_ledger = now() + self.ledger_every
                    try:
                        report = await asyncio.wait_for(check_bank(bank, settled=False), 15)
                    except Exception:
                        pass  # the bank went away meanwhile: the next round tries again
                    else:
                        self.ledger_checks += 1
                        self.record_ledger(DURING, report)
            await asyncio.sleep(self.read_every)

    def _when(self) -> str:
        current = self.current()
        during = (
            f", during fault {current.spec.number} ({current.spec.describe()})" if current else ""
        )
        return f"at {self.timeline.now():.1f} s{during}"

    def check_read(self, accounts: Sequence[Account]) -> None:
        negative = [a for a in accounts if a.balance < 0]
        self.invariants[NO_NEGATIVE_READ].record(
            f"{self._when()}: " + ", ".join(f"{a.id} held ${a.balance}" for a in negative)
            if negative
            else None
        )
        total = sum(a.balance for a in accounts)
        self.trace.money.append((round(self.timeline.now(), 2), total))
        self.invariants[CEILING_READ].record(
            f"{self._when()}: the bank held ${total}, more than the ${self.ceiling} there is"
            if total > self.ceiling
            else None
        )

    def record_ledger(self, when: str, report: LedgerReport) -> None:
        """Each of the ledger's checks into its invariant ``when`` (DURING or AT_END)."""
        if when == DURING:
            violations = sum(bool(c.violations) for c in report.checks)
            self.trace.checks.append((round(self.timeline.now(), 2), violations))
        for c in report.checks:
            inv = self.invariants[f"{when}: {c.name}"]
            first = c.violations[0] if c.violations else None
            inv.record(f"{self._when()}: {first}" if first and when == DURING else first)


class Progress:
    """A line every few seconds: transfers started and ended, the fault on, the verdict."""

    def __init__(
        self,
        result: SoakResult,
        watch: MoneyWatch,
        current: Callable[[], FaultRecord | None],
        timeline: Timeline,
        every: float,
    ) -> None:
        self.result, self.watch, self.current = result, watch, current
        self.timeline, self.every = timeline, every

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            self.timeline.log(self.line())

    def line(self) -> str:
        transfers = self.result.transfers
        started = sum(t.started is not None for t in transfers)
        statuses = Counter(t.status for t in transfers if t.finished)
        ended = sum(statuses.values())
        current = self.current()
        fault = (
            f"fault {current.spec.number} {current.spec.kind} {current.spec.target}"
            if current
            else "no fault"
        )
        violated = [inv.name for inv in self.result.invariants if inv.violations]
        watch = self.watch
        health = (
            f"invariants hold ({watch.reads} reads, {watch.ledger_checks} ledger checks)"
            if not violated
            else f"{len(violated)} INVARIANT(S) VIOLATED: {violated[0]}"
        )
        return (
            f"transfers {started}/{len(transfers)} started, {ended} ended "
            f"({', '.join(f'{n} {s}' for s, n in sorted(statuses.items())) or 'none yet'}), "
            f"{started - ended} in flight | {fault} | {health}"
        )
