"""A transfer as Temporal and the bank's ledger know it: its workflow id, how to start
it, and its rows in the ledger. The experiments, the soak and the panel share it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDReusePolicy

from bank.client import BankClient
from bank.models import Movement
from worker.shared import (
    MONEY_TRANSFER_TASK_QUEUE_NAME,
    MONEY_TRANSFER_WORKFLOW,
    PaymentDetails,
    idempotency_key,
)

TransferHandle = WorkflowHandle[Any, str]


def transfer_id(reference_id: str) -> str:
    """The starter's workflow id for a transfer: `make transfer REFERENCE_ID=...` re-attaches."""
    return f"transfer-{reference_id}"


async def start_transfer(
    client: Client,
    details: PaymentDetails,
    *,
    task_queue: str = MONEY_TRANSFER_TASK_QUEUE_NAME,
    id_reuse_policy: WorkflowIDReusePolicy = WorkflowIDReusePolicy.REJECT_DUPLICATE,
) -> TransferHandle:
    return await client.start_workflow(
        MONEY_TRANSFER_WORKFLOW,
        details,
        id=transfer_id(details.reference_id),
        task_queue=task_queue,
        result_type=str,
        id_reuse_policy=id_reuse_policy,
    )


async def ledger_after(bank: BankClient, after: int = 0) -> list[Movement]:
    """Every movement with seq > ``after``, oldest first."""
    found: list[Movement] = []
    while True:
        page = await bank.ledger(after=found[-1].seq if found else after, limit=10_000)
        found.extend(page)
        if len(page) < 10_000:
            return found


async def ledger_end(bank: BankClient) -> int:
    """The seq of the newest movement (0 for an empty ledger)."""
    movements = await ledger_after(bank)
    return movements[-1].seq if movements else 0


def rows(movements: Iterable[Movement], reference_id: str, step: str) -> list[Movement]:
    """A transfer's rows for one step (withdraw, deposit, refund), by its idempotency key."""
    key = idempotency_key(reference_id, step)
    return [m for m in movements if m.idempotency_key == key]
