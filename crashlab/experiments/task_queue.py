"""The tutorial's knowledge check: "Why do we use a shared constant for the Task Queue name?"

"If they don't match exactly, your Worker will never see the Workflow tasks, and
execution will stall indefinitely." This experiment makes the stall visible: a
transfer started on a mistyped task queue stays Running with nothing in its
history but its start, no worker polls that queue, and no money moves. Then
the fix: the stalled run is terminated (it never did anything, so nothing can
double) and the same transfer, same reference id, is started on the right queue.
"""

from __future__ import annotations

import asyncio
import time

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import WorkflowIDReusePolicy

from bank.client import BankClient
from crashlab.constants import AMOUNT, SOURCE, TARGET
from crashlab.experiments.kit import (
    Narrator,
    Outcome,
    Say,
    TransferHandle,
    check_invariants,
    check_moved_once,
    cleanup,
    ensure_funds,
    event_name,
    ledger_after,
    ledger_end,
    prepare,
    result_within,
    seconds,
    short_id,
    start_transfer,
    status,
    status_name,
)
from crashlab.stack import Stack
from worker.config import poller_identities
from worker.shared import MONEY_TRANSFER_TASK_QUEUE_NAME, PaymentDetails

NAME = "task-queue"
TITLE = "The task queue name: a typo stalls a transfer forever (tutorial's knowledge check)"
# A realistic slip: the constant is called MONEY_TRANSFER_TASK_QUEUE_NAME, its value
# is TRANSFER_MONEY_TASK_QUEUE. Typing the name instead of importing it swaps the words.
TYPO = "MONEY_TRANSFER_TASK_QUEUE"


async def run(
    stack: Stack,
    say: Say,
    *,
    seconds_stalled: float = 10.0,
    typo: str = TYPO,
    source: str = SOURCE,
    target: str = TARGET,
    amount: int = AMOUNT,
) -> Outcome:
    outcome = Outcome(NAME)
    n = Narrator(say, outcome)
    await prepare(stack, n)
    client = await stack.temporal()
    stalled: TransferHandle | None = None
    try:
        async with stack.bank() as bank:
            await ensure_funds(client, bank, n, source, target, amount)
            details = PaymentDetails(source, target, amount, f"task-queue-{short_id()}")
            start_seq = await ledger_end(bank)
            stalled = await _stall(
                stack, n, client, bank, details, typo, seconds_stalled, start_seq
            )
            await _fix(stack, n, client, bank, details, stalled, start_seq)
    finally:
        if stalled is not None and await status(stalled) == WorkflowExecutionStatus.RUNNING:
            await stalled.terminate(reason="experiment task-queue: cleaning up")
        await cleanup(stack)
    return outcome


async def _stall(
    stack: Stack,
    n: Narrator,
    client: Client,
    bank: BankClient,
    details: PaymentDetails,
    typo: str,
    seconds_stalled: float,
    start_seq: int,
) -> TransferHandle:
    n.step(
        f"Start a transfer on task queue {typo!r}: a typo for {MONEY_TRANSFER_TASK_QUEUE_NAME!r}, "
        "the queue the worker polls. (The starter would do it with "
        f"`--task-queue {typo}`.)"
    )
    handle = await start_transfer(client, details, task_queue=typo)
    n.look(f"the workflow in the Temporal UI: {stack.workflow_url(handle.id)}")
    n.on_dashboard(
        "nothing at all: no retry, no failure, no new queue among the workers polling. "
        "The transfer waits on a queue nobody polls, and only its age in the UI grows."
    )
    n.note(f"Watching it for {seconds_stalled:g} s...")
    began = time.monotonic()
    ever_polled = False
    while time.monotonic() - began < seconds_stalled:
        ever_polled |= bool(await poller_identities(client, typo))
        await asyncio.sleep(1.0)  # the observation itself: watch it stall

    n.step("What stalled looks like.")
    state = await status(handle)
    events = [event_name(e) for e in (await handle.fetch_history()).events]
    n.check(
        "the workflow is still Running, and nothing ever ran: its history holds only its start",
        state == WorkflowExecutionStatus.RUNNING
        and events == ["WorkflowExecutionStarted", "WorkflowTaskScheduled"],
        f"status {status_name(state)} after {seconds(time.monotonic() - began)}; history: "
        + ", ".join(events),
    )
    right = await poller_identities(client, MONEY_TRANSFER_TASK_QUEUE_NAME)
    n.check(
        f"no worker polls {typo!r}, while the worker polls {MONEY_TRANSFER_TASK_QUEUE_NAME!r}",
        not ever_polled and not await poller_identities(client, typo) and bool(right),
        f"pollers on {typo}: none; on {MONEY_TRANSFER_TASK_QUEUE_NAME}: {', '.join(right)}",
    )
    movements = await ledger_after(bank, start_seq)
    mine = [m for m in movements if m.idempotency_key.startswith(f"{details.reference_id}-")]
    n.check(
        "nothing moved at the bank while it stalled",
        not mine,
        f"no ledger row with a key starting {details.reference_id}-"
        if not mine
        else f"ledger rows {', '.join(str(m.seq) for m in mine)}",
    )
    n.note(
        "The lesson: the task queue name connects the starter to the worker. A typo is a "
        "different radio frequency: the workflow waits forever and nothing says why, except "
        "that no worker polls its queue (`temporal task-queue describe --task-queue "
        f"{typo}`, or the starter's 'No worker is polling' warning). The lab's worker and "
        "starter import one constant, worker.shared.MONEY_TRANSFER_TASK_QUEUE_NAME, so they "
        "cannot disagree."
    )
    return handle


async def _fix(
    stack: Stack,
    n: Narrator,
    client: Client,
    bank: BankClient,
    details: PaymentDetails,
    stalled: TransferHandle,
    start_seq: int,
) -> None:
    n.step(
        "Fix the name: terminate the stalled run (it never ran a step) and start the same "
        f"transfer, same reference id {details.reference_id}, on {MONEY_TRANSFER_TASK_QUEUE_NAME}."
    )
    first_run = (await stalled.describe()).run_id
    await stalled.terminate(reason="started on a mistyped task queue")
    # Terminated runs may be started again under the same id; completed ones may not.
    fixed = await start_transfer(
        client, details, id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY
    )
    n.look(f"both runs of {fixed.id} in the Temporal UI: {stack.workflow_url(fixed.id)}")
    began = time.monotonic()
    await result_within(fixed, 60, "The transfer")
    n.note(f"It completed {seconds(time.monotonic() - began)} after it was started again.")

    n.step("Verify with the workflows and the bank's ledger.")
    old = client.get_workflow_handle(stalled.id, run_id=first_run)
    old_state = (await old.describe()).status
    new_state = (await fixed.describe()).status
    n.check(
        "the stalled run was terminated and the run on the right queue completed",
        old_state == WorkflowExecutionStatus.TERMINATED
        and new_state == WorkflowExecutionStatus.COMPLETED,
        f"first run {status_name(old_state)}, second run {status_name(new_state)}",
    )
    movements = await ledger_after(bank, start_seq)
    check_moved_once(
        n, movements, details.reference_id, "withdraw", details.source_account, details.amount
    )
    check_moved_once(
        n, movements, details.reference_id, "deposit", details.target_account, details.amount
    )
    await check_invariants(n, client, bank, {details.reference_id: "completed"})
