"""Faults on one link (`make link`), with transfers running across it.

1. A slow link between the worker and Temporal: every poll and every command crosses it,
   so transfers take longer, and nothing else changes: no step is retried, nothing is
   lost, each amount moves once.
2. Every packet the bank sends the worker lost: the worker's withdrawals reach the bank,
   but the answers never arrive; the calls time out and Temporal retries them with the
   same idempotency keys, so once the link is back the bank answers from its ledger
   instead of moving the money again.

Each round moves money around a ring of the spare accounts, so every balance ends where
it started and the tutorial's accounts are left alone.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

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
    records_named,
    result_within,
    rows,
    seconds,
    short_id,
    start_transfer,
    transfer_id,
    wait_pending,
    worker_log,
)
from crashlab.levers import LinkFault
from crashlab.stack import Stack
from worker.shared import PaymentDetails

NAME = "link"
TITLE = "Faulty links: a slow link to Temporal, then the bank's answers lost"
# The worker's bank client gives up on a call after this long (services/worker/config.py,
# BANK_TIMEOUT), and Temporal retries it.
BANK_CLIENT_TIMEOUT = 5.0


async def run(
    stack: Stack,
    say: Say,
    *,
    delay_ms: int = 200,
    transfers: int = 3,
    amount: int = 10,
) -> Outcome:
    # Two at least: the first across the slow link also waits for the reconnection.
    if not 2 <= transfers <= len(SPARE_ACCOUNTS) // 2:
        raise ExperimentError(f"--transfers takes 2 to {len(SPARE_ACCOUNTS) // 2}.")
    outcome = Outcome(NAME)
    n = Narrator(say, outcome)
    await prepare(stack, n)
    client = await stack.temporal()
    try:
        await _slow_temporal(stack, n, client, delay_ms, SPARE_ACCOUNTS[:transfers], amount)
        await _lossy_bank(stack, n, client, SPARE_ACCOUNTS[-transfers:], amount)
    finally:
        await cleanup(stack)  # link faults too: they are levers like the others
    return outcome


def _ring(ring: Sequence[str], amount: int, label: str) -> list[PaymentDetails]:
    batch = short_id()
    return [
        PaymentDetails(ring[i], ring[(i + 1) % len(ring)], amount, f"link-{label}-{batch}-{i + 1}")
        for i in range(len(ring))
    ]


async def _timed(client: Client, transfers: Sequence[PaymentDetails]) -> list[float]:
    """Runs the transfers one after another; each one's seconds from start to result."""
    took = []
    for details in transfers:
        begin = time.monotonic()
        handle = await start_transfer(client, details)
        await result_within(handle, 120, f"Transfer {details.reference_id}")
        took.append(time.monotonic() - begin)
    return took


async def _slow_temporal(
    stack: Stack, n: Narrator, client: Client, delay_ms: int, ring: Sequence[str], amount: int
) -> None:
    n.step(
        f"Run {len(ring)} transfers of ${amount} around {' -> '.join([*ring, ring[0]])}, "
        "one after another."
    )
    before = await _timed(client, _ring(ring, amount, "before"))
    n.note(f"They took {seconds(statistics.median(before))} each (the median).")

    fault = LinkFault("worker", "temporal", delay_ms=delay_ms)
    n.step(
        f"Slow the link between the worker and Temporal: `make link FROM=worker TO=temporal "
        f"DELAY_MS={delay_ms}`. Its connections are reset once and come back through the "
        "slow link; the bank's link is left alone."
    )
    await lever(fault.pull, stack)
    try:
        n.note("`make status` lists it under 'Levers on now'.")
        n.on_dashboard(
            "a band opens; transfers keep ending, only more slowly, and nothing retries or "
            "fails: a slow link delays every message and loses none."
        )
        transfers = _ring(ring, amount, "slow")
        async with stack.bank() as bank:
            start_seq = await ledger_end(bank)
        n.step("Run the same transfers across the slow link, one after another.")
        during = await _timed(client, transfers)
    finally:
        await lever(fault.undo, stack)
    n.note("Cleared the link (`make link-clear`).")

    # The first one also waits for the worker to reconnect: its connections to Temporal
    # were reset when the fault began. The others show the slow link alone.
    first, steady = during[0], statistics.median(during[1:])
    n.figure(
        "slow_link_first_seconds",
        first,
        f"the first took {seconds(first)}: the worker reconnected to Temporal meanwhile",
    )
    slower = steady - statistics.median(before)
    n.figure(
        "slow_link_extra_seconds",
        slower,
        f"the others {seconds(steady)} each, {seconds(slower)} more than before: every poll "
        "and every command now crosses the slow link",
    )
    n.step("Verify with the workflows' histories and the bank's ledger.")
    n.check(
        "the transfers were slower across the slow link (at least one round trip more)",
        slower >= 2 * delay_ms / 1000,
        f"{seconds(statistics.median(before))} before, {seconds(steady)} with a "
        f"{2 * delay_ms} ms round trip",
    )
    handles = [client.get_workflow_handle(transfer_id(t.reference_id)) for t in transfers]
    await _check_completed_once(n, client, stack, handles, transfers, start_seq)
    retried = [
        f"{h.id} {r.name} attempt {r.attempt}"
        for h in handles
        for r in [
            *records_named(await h.fetch_history(), "withdraw"),
            *records_named(await h.fetch_history(), "deposit"),
        ]
        if r.attempt > 1
    ]
    n.check(
        "no step was retried: a slow link to Temporal loses nothing",
        not retried,
        "; ".join(retried) or f"{2 * len(handles)} steps, each done at its first attempt",
    )


async def _lossy_bank(
    stack: Stack, n: Narrator, client: Client, ring: Sequence[str], amount: int
) -> None:
    transfers = _ring(ring, amount, "lossy")
    fault = LinkFault("worker", "bank", loss_pct=100, direction="back")
    n.step(
        "Lose every packet the bank sends the worker: `make link FROM=worker TO=bank "
        "LOSS_PCT=100 DIRECTION=back`. The worker's calls still reach the bank, and the bank "
        "still does them; its answers never come back."
    )
    async with stack.bank() as bank:
        start_seq = await ledger_end(bank)
    logged_from = now()
    await lever(fault.pull, stack)
    try:
        n.step(
            f"Start {len(transfers)} transfers around {' -> '.join([*ring, ring[0]])}, and "
            "wait until each withdrawal has timed out and Temporal has retried it."
        )
        handles = [await start_transfer(client, t) for t in transfers]
        n.on_dashboard(
            "inside the band, retries climb every few seconds (the withdrawals time out) "
            "while the money total does not move: nothing was applied twice."
        )
        n.note(
            "A link that loses everything hangs rather than refuses: each call waits for the "
            f"bank client's {BANK_CLIENT_TIMEOUT:g} s timeout, then Temporal retries it with "
            "the same idempotency key (and that one waits too)."
        )
        within = 4 * BANK_CLIENT_TIMEOUT + 30
        for handle in handles:
            await wait_pending(handle, "withdraw", within=within, started=True, min_attempt=2)
    finally:
        await lever(fault.undo, stack)
    n.note("Cleared the link (`make link-clear`).")
    timeouts = lines_with(worker_log(stack, logged_from), "BankTimeoutError")
    if timeouts:
        n.note(f"The worker's log meanwhile (`make logs`):\n  {timeouts[0]}")

    n.step("Wait for every transfer to finish.")
    healed = time.monotonic()
    for handle in handles:
        await result_within(handle, 120, f"Transfer {handle.id}")
    took = time.monotonic() - healed
    n.figure(
        "lossy_link_heal_seconds",
        took,
        f"all {len(handles)} finished {seconds(took)} after the link was back",
    )
    replayed = lines_with(worker_log(stack, logged_from), "The bank had already done this")
    if replayed:
        n.note(
            f"The worker's log shows {len(replayed)} step(s) the bank had already done, "
            f"answered from its ledger instead of moving money again, e.g.:\n  {replayed[0]}"
        )
    n.step("Verify with the workflows' histories and the bank's ledger.")
    attempts = [
        (h.id, r.attempt)
        for h in handles
        for r in records_named(await h.fetch_history(), "withdraw")
    ]
    n.check(
        "each withdrawal timed out and was retried before it went through",
        len(attempts) == len(handles) and all(attempt > 1 for _, attempt in attempts),
        ", ".join(f"{wid} withdraw done at attempt {a}" for wid, a in attempts),
    )
    await _check_completed_once(n, client, stack, handles, transfers, start_seq)


async def _check_completed_once(
    n: Narrator,
    client: Client,
    stack: Stack,
    handles: Sequence[WorkflowHandle[Any, Any]],
    transfers: Sequence[PaymentDetails],
    start_seq: int,
) -> None:
    statuses = [(await h.describe()).status for h in handles]
    completed = sum(s == WorkflowExecutionStatus.COMPLETED for s in statuses)
    n.check(
        f"all {len(handles)} transfers completed",
        completed == len(handles),
        f"{completed} of {len(handles)} completed",
    )
    async with stack.bank() as bank:
        movements = await ledger_after(bank, start_seq)
        wrong = [
            f"{t.reference_id}-{step}: {len(found)} rows"
            for t in transfers
            for step, account in (("withdraw", t.source_account), ("deposit", t.target_account))
            if len(found := rows(movements, t.reference_id, step)) != 1
            or found[0].amount != t.amount
            or found[0].account_id != account
        ]
        n.check(
            f"each of the {len(transfers)} transfers moved its ${transfers[0].amount} exactly once",
            not wrong,
            "; ".join(wrong) or "one withdraw and one deposit row per transfer in the ledger",
        )
        await check_invariants(n, client, bank, {t.reference_id: "completed" for t in transfers})
