"""The tutorial's "Mission: Compensating Transactions": one attempt, a deposit that fails for good.

The retry policy goes down to one attempt (PaymentDetails.max_attempts=1, the
starter's --attempts 1) and the bank refuses every deposit. The deposit fails
once and for good, so the workflow runs its compensation: a refund to the
source account.

A refund is a deposit too (into the source account), so the same broken bank
refuses it at first. Unlike the deposit, the refund never gives up: a
compensation that gave up would lose the money. Once the bank works again (the
fault is cleared) the refund goes through and the workflow fails with a message
that says the money went back.
"""

from __future__ import annotations

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from bank.client import BankClient
from bank.models import Fault, FaultMode
from crashlab.constants import AMOUNT, SOURCE, TARGET
from crashlab.experiments.kit import (
    ExperimentError,
    Narrator,
    Outcome,
    Say,
    check_invariants,
    check_moved_never,
    check_moved_once,
    cleanup,
    ensure_funds,
    ledger_after,
    ledger_end,
    prepare,
    records_named,
    result_within,
    short_id,
    start_transfer,
    status_name,
    wait_pending,
)
from crashlab.stack import Stack
from worker.shared import PaymentDetails

NAME = "compensation"
TITLE = "Compensation: one attempt, the deposit fails for good, the refund runs"


async def run(
    stack: Stack,
    say: Say,
    *,
    source: str = SOURCE,
    target: str = TARGET,
    amount: int = AMOUNT,
) -> Outcome:
    outcome = Outcome(NAME)
    n = Narrator(say, outcome)
    await prepare(stack, n)
    client = await stack.temporal()
    try:
        async with stack.bank() as bank:
            await ensure_funds(client, bank, n, source, target, amount)
            await _compensate(stack, n, client, bank, source, target, amount)
    finally:
        await cleanup(stack)
    return outcome


async def _compensate(
    stack: Stack,
    n: Narrator,
    client: Client,
    bank: BankClient,
    source: str,
    target: str,
    amount: int,
) -> None:
    details = PaymentDetails(source, target, amount, f"compensation-{short_id()}", max_attempts=1)
    start_seq = await ledger_end(bank)
    before = {a.id: a.balance for a in await bank.accounts()}

    n.step("Force the deposit to fail: the bank refuses every deposit (a fault, mode error).")
    await bank.set_fault("deposit", Fault(FaultMode.ERROR))
    n.on_dashboard(
        "deposit retries while the refund waits for the bank; then transfers failed ticks "
        "up once, and the money ends where it started."
    )
    n.step(
        f"Start a transfer that tries each step only once (max_attempts=1, the tutorial's "
        f"'retry only 1 time'; `make transfer ATTEMPTS=1`): ${amount} from {source} to "
        f"{target}, reference id {details.reference_id}."
    )
    handle = await start_transfer(client, details)
    n.look(f"the workflow in the Temporal UI: {stack.workflow_url(handle.id)}")
    refund = await wait_pending(handle, "refund", within=30, min_attempt=2)
    n.note(
        "The deposit failed on its only attempt, and the workflow started the refund. "
        f"The refund is a deposit into {source}, so the broken bank refuses it too "
        f"({refund.attempt - 1} failed so far), but the refund never gives up: it retries until "
        "the bank works again."
    )

    n.step("The bank works again: clear the fault (DELETE /faults/deposit).")
    await bank.clear_faults("deposit")
    try:
        await result_within(handle, 60, "The transfer")
    except WorkflowFailureError as err:
        failure = err.cause
    else:
        raise ExperimentError("The transfer completed, although its deposit could never work.")
    message = failure.message if isinstance(failure, ApplicationError) else str(failure)
    n.note(f"The workflow failed, as it should: {message}")

    n.step("Verify with the workflow's history and the bank's ledger.")
    described = await handle.describe()
    n.check(
        "the workflow failed with a message that says the money was refunded",
        described.status == WorkflowExecutionStatus.FAILED
        and f"${amount} was refunded to {source}" in message,
        f"status {status_name(described.status)}: {message}",
    )
    history = await handle.fetch_history()
    deposits = records_named(history, "deposit")
    refunds = records_named(history, "refund")
    n.check(
        "the deposit was tried exactly once (the retry policy's one attempt)",
        len(deposits) == 1
        and deposits[0].attempt == 1
        and deposits[0].outcome == "failed"
        and deposits[0].retry_state == "maximum attempts reached",
        f"{len(deposits)} deposit activity, attempt {deposits[0].attempt if deposits else 0}, "
        f"{deposits[0].outcome if deposits else '-'}: "
        f"{deposits[0].retry_state if deposits else '-'}",
    )
    n.check(
        "the refund ran automatically and completed",
        len(refunds) == 1 and refunds[0].outcome == "completed",
        f"{len(refunds)} refund activity, {refunds[0].outcome if refunds else '-'} on attempt "
        f"{refunds[0].attempt if refunds else 0}",
    )
    movements = await ledger_after(bank, start_seq)
    check_moved_once(n, movements, details.reference_id, "withdraw", source, amount)
    check_moved_once(n, movements, details.reference_id, "refund", source, amount)
    check_moved_never(n, movements, details.reference_id, "deposit")
    after = {a.id: a.balance for a in await bank.accounts()}
    n.check(
        f"the balances are restored: {source} and {target} hold what they held before",
        after[source] == before[source] and after[target] == before[target],
        f"{source} ${before[source]} -> ${after[source]}, "
        f"{target} ${before[target]} -> ${after[target]}",
    )
    await check_invariants(n, client, bank, {details.reference_id: "compensated"})
