"""Pay an invoice: take the money from the payer, give it to the payee; if the payee
cannot take it, give it back."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from invoices.activities import Movement, deposit, withdraw

TASK_QUEUE = "invoices"


@dataclass
class Invoice:
    invoice_id: str  # the bank's idempotency keys are <invoice_id>-withdraw, -deposit, -refund
    payer: str
    payee: str
    amount: int


@workflow.defn
class PayInvoice:
    @workflow.run
    async def run(self, invoice: Invoice) -> str:
        await self._move(withdraw, f"{invoice.invoice_id}-withdraw", invoice.payer, invoice)
        try:
            await self._move(deposit, f"{invoice.invoice_id}-deposit", invoice.payee, invoice)
        except ActivityError:
            await self._move(deposit, f"{invoice.invoice_id}-refund", invoice.payer, invoice)
            return f"invoice {invoice.invoice_id}: refunded"
        return f"invoice {invoice.invoice_id}: paid"

    async def _move(
        self, step: Callable[[Movement], Awaitable[None]], key: str, account: str, invoice: Invoice
    ) -> None:
        await workflow.execute_activity(
            step,
            Movement(key, account, invoice.amount),
            start_to_close_timeout=timedelta(seconds=5),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=2)),
        )
