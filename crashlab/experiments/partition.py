"""The tutorial's "Mission: Network Partition Simulation", twice.

1. Freeze the Temporal server (`docker pause`) while transfers are in flight:
   the worker and the bank go on, but nobody can tell Temporal; after the pause
   everything completes.
2. Cut the bank off the network (`docker network disconnect`) while transfers
   are in flight: the bank may do a withdrawal whose answer never arrives;
   Temporal retries, the bank answers from its ledger, nothing moves twice.

Each round moves money around a ring of the spare accounts (10-001 to 10-00n
and back to the first), so every balance ends where it started and the
tutorial's accounts are left alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

from temporalio.client import Client, WorkflowExecutionStatus

from bank.models import Fault, FaultMode, Movement
from crashlab.constants import SPARE_ACCOUNTS
from crashlab.experiments.kit import (
    ExperimentError,
    Narrator,
    Outcome,
    Say,
    check_invariants,
    cleanup,
    ledger_after,
    ledger_end,
    lever,
    lines_with,
    now,
    prepare,
    result_within,
    rows,
    seconds,
    short_id,
    start_transfer,
    wait_pending,
    worker_log,
)
from crashlab.stack import Stack
from worker.shared import PaymentDetails

NAME = "partition"
TITLE = "Network partition: freeze Temporal, then cut the bank off, with transfers in flight"
WAYS = ("pause", "disconnect")


async def run(
    stack: Stack,
    say: Say,
    *,
    seconds_down: float = 30.0,
    transfers: int = 5,
    amount: int = 10,
    latency_ms: int = 2000,
    ways: Sequence[str] = WAYS,
) -> Outcome:
    if not 2 <= transfers <= len(SPARE_ACCOUNTS):
        raise ExperimentError(f"--transfers takes 2 to {len(SPARE_ACCOUNTS)}, not {transfers}.")
    unknown = [way for way in ways if way not in WAYS]
    if unknown or not ways:
        raise ExperimentError(f"--way takes pause or disconnect, not {', '.join(unknown)}.")
    outcome = Outcome(NAME)
    n = Narrator(say, outcome)
    await prepare(stack, n)
    client = await stack.temporal()
    try:
        for way in ways:
            # Different accounts for each round, so the two rings overlap as little as can be.
            offset = 0 if way == "pause" else len(SPARE_ACCOUNTS) - transfers
            ring = SPARE_ACCOUNTS[offset : offset + transfers]
            await _round(stack, n, client, way, ring, amount, latency_ms, seconds_down)
    finally:
        await cleanup(stack)
    return outcome


# What the worker's log says during each partition.
LOG_MARKS = {"pause": "Temporal does not answer", "disconnect": "failed: "}


async def _round(
    stack: Stack,
    n: Narrator,
    client: Client,
    way: str,
    ring: Sequence[str],
    amount: int,
    latency_ms: int,
    seconds_down: float,
) -> None:
    batch = short_id()
    transfers = [
        PaymentDetails(ring[i], ring[(i + 1) % len(ring)], amount, f"partition-{batch}-{i + 1}")
        for i in range(len(ring))
    ]
    async with stack.bank() as bank:
        start_seq = await ledger_end(bank)
        n.step(
            f"Start {len(transfers)} transfers of ${amount} around the ring "
            f"{' -> '.join([*ring, ring[0]])}, with the bank slowed down by "
            f"{latency_ms / 1000:g} s (a latency fault) so that they are in flight."
        )
        await bank.set_fault("all", Fault(FaultMode.LATENCY, latency_ms=latency_ms))
        try:
            handles = [await start_transfer(client, details) for details in transfers]
            for handle in handles:
                await wait_pending(handle, "withdraw", within=30, started=True)
        finally:
            await bank.clear_faults()
        n.note(
            f"All {len(handles)} withdrawals are running on the worker, waiting for the bank "
            f"(batch {batch}). The latency fault is cleared for whatever comes next."
        )
        n.look(f"the workflows in the Temporal UI: {stack.ui_url}/namespaces/default/workflows")

    logged_from = now()
    if way == "pause":

        async def landed() -> int:
            async with stack.bank() as bank:
                found = await ledger_after(bank, start_seq)
            return sum(bool(rows(found, t.reference_id, "withdraw")) for t in transfers)

        await _pause_temporal(stack, n, seconds_down, landed)
    else:
        await _disconnect_bank(stack, n, seconds_down)
    meanwhile = lines_with(worker_log(stack, logged_from), LOG_MARKS[way])
    if meanwhile:
        n.note(f"The worker's log meanwhile (`make logs`):\n  {meanwhile[0]}")

    n.step("Wait for every transfer to finish.")
    healed = time.monotonic()
    results = await asyncio.gather(
        *(result_within(h, 60 + seconds_down, f"Transfer {h.id}") for h in handles),
        return_exceptions=True,
    )
    took = time.monotonic() - healed
    n.figure(
        f"{way}_heal_seconds",
        took,
        f"all {len(handles)} finished {seconds(took)} after the partition ended",
    )
    replayed = lines_with(worker_log(stack, logged_from), "The bank had already done this")
    if replayed:
        n.note(
            f"The worker's log shows {len(replayed)} step(s) the bank had already done, "
            f"answered from its ledger instead of moving money again, e.g.:\n  {replayed[0]}"
        )

    n.step("Verify with the workflows and the bank's ledger.")
    statuses = [(await h.describe()).status for h in handles]
    completed = sum(s == WorkflowExecutionStatus.COMPLETED for s in statuses)
    failures = [str(r) for r in results if isinstance(r, BaseException)]
    n.check(
        f"all {len(handles)} transfers completed",
        completed == len(handles),
        f"{completed} of {len(handles)} completed"
        + (f"; first failure: {failures[0]}" if failures else ""),
    )
    async with stack.bank() as bank:  # a new client: the bank's published port may move
        movements = await ledger_after(bank, start_seq)
        _check_each_once(n, movements, transfers)
        await check_invariants(n, client, bank, {t.reference_id: "completed" for t in transfers})


def _check_each_once(
    n: Narrator, movements: Sequence[Movement], transfers: Sequence[PaymentDetails]
) -> None:
    wrong = []
    for t in transfers:
        for step, account in (("withdraw", t.source_account), ("deposit", t.target_account)):
            found = rows(movements, t.reference_id, step)
            if len(found) != 1 or found[0].amount != t.amount or found[0].account_id != account:
                wrong.append(f"{t.reference_id}-{step}: {len(found)} rows")
    seqs = sorted(
        m.seq
        for t in transfers
        for s in ("withdraw", "deposit")
        for m in rows(movements, t.reference_id, s)
    )
    n.check(
        f"each of the {len(transfers)} transfers moved its ${transfers[0].amount} exactly once",
        not wrong,
        "; ".join(wrong)
        or f"{len(seqs)} ledger rows ({seqs[0]} to {seqs[-1]}), one withdraw and one deposit "
        "per transfer",
    )


async def _pause_temporal(
    stack: Stack, n: Narrator, seconds_down: float, landed: Callable[[], Awaitable[int]]
) -> None:
    n.step(f"Freeze the Temporal server for {seconds_down:g} s (`docker pause`).")
    await lever(stack.pause, "temporal")
    n.on_dashboard(
        "transfers ending drops to 0 for the pause (Temporal's own metrics pause with it), "
        "then a burst as the workflows catch up."
    )
    try:
        n.note(
            "Nobody can reach Temporal now: the worker cannot report what it did. The bank "
            "keeps working, so the withdrawals in flight still land."
        )
        await _hold(n, seconds_down)
        n.note(
            f"The bank's ledger, read while Temporal is still frozen: {await landed()} of the "
            "withdrawals have landed, and Temporal has not heard of them yet."
        )
    finally:
        await lever(stack.unpause, "temporal")
    n.note("Resumed Temporal (`docker unpause`).")


async def _disconnect_bank(stack: Stack, n: Narrator, seconds_down: float) -> None:
    n.step(
        f"Cut the bank off the network for {seconds_down:g} s "
        "(`docker network disconnect`): the worker cannot reach it; you still can (its page, "
        "`make status`), over its control network."
    )
    await lever(stack.disconnect, "bank")
    try:
        n.note(
            "The withdrawals in flight still land in the bank's ledger, but their answers "
            "never reach the worker: its calls fail, and Temporal retries them."
        )
        await _hold(n, seconds_down)
    finally:
        await lever(stack.reconnect, "bank")
    n.note("Plugged the bank back in (`docker network connect`).")


async def _hold(n: Narrator, seconds_down: float) -> None:
    """The partition itself: the deliberate wait is the experiment."""
    end = time.monotonic() + seconds_down
    while (left := end - time.monotonic()) > 0:
        await asyncio.sleep(min(10.0, left))
        if (left := end - time.monotonic()) > 0.5:
            n.note(f"... {left:.0f} s to go")
