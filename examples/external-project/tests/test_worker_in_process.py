"""Our worker in the test process instead of a container, against the lab's Temporal and
bank: the bank frozen mid-invoice (`docker pause`), the invoice paid once all the same."""

import asyncio
import uuid

import pytest
from crashlab.testing import Lab
from temporalio.client import Client
from temporalio.worker import Worker

from invoices.activities import deposit, withdraw
from invoices.workflows import Invoice, PayInvoice


async def pay_with_a_local_worker(lab: Lab, invoice: Invoice) -> str:
    client = await Client.connect(lab.temporal_address)
    queue = f"invoices-local-{uuid.uuid4().hex[:8]}"  # ours alone: no container polls it
    async with Worker(
        client, task_queue=queue, workflows=[PayInvoice], activities=[withdraw, deposit]
    ):
        handle = await client.start_workflow(
            PayInvoice.run, invoice, id=f"invoice-{invoice.invoice_id}", task_queue=queue
        )
        await asyncio.to_thread(lab.wait_for_step, invoice.invoice_id, "withdraw")
        await asyncio.to_thread(lab.pause, "bank")  # the bank stops answering mid-invoice
        await asyncio.sleep(1)  # the deposit's attempts meet a frozen bank meanwhile
        await asyncio.to_thread(lab.unpause, "bank")
        return await asyncio.wait_for(handle.result(), 60)


def test_a_worker_in_the_test_process_rides_out_a_frozen_bank(
    crashlab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bank's published port serves the teller API too.
    monkeypatch.setenv("BANK_URL", crashlab.bank_url)
    invoice = Invoice("inv-local-1", payer="10-003", payee="10-004", amount=75)
    assert asyncio.run(pay_with_a_local_worker(crashlab, invoice)) == "invoice inv-local-1: paid"
    report = crashlab.wait_settled()
    assert report.ok, report.lines()
    assert report.outcome("inv-local-1") == "completed"
