"""Our own worker, killed mid-invoice: the invoice is paid once, and the ledger agrees."""

import asyncio

from crashlab.testing import Lab
from temporalio.client import Client

from invoices.workflows import TASK_QUEUE, Invoice, PayInvoice
from tests.conftest import WORKER


async def pay(address: str, invoice: Invoice) -> str:
    client = await Client.connect(address)
    handle = await client.start_workflow(
        PayInvoice.run, invoice, id=f"invoice-{invoice.invoice_id}", task_queue=TASK_QUEUE
    )
    return handle.id


async def result(address: str, workflow_id: str) -> str:
    client = await Client.connect(address)
    handle = client.get_workflow_handle_for(PayInvoice.run, workflow_id)
    return await asyncio.wait_for(handle.result(), 60)


def test_our_worker_killed_mid_invoice_pays_once(crashlab: Lab) -> None:
    crashlab.fault("deposit", "error")  # hold the invoice between its two steps
    invoice = Invoice("inv-1", payer="10-001", payee="10-002", amount=120)
    workflow_id = asyncio.run(pay(crashlab.temporal_address, invoice))
    crashlab.wait_for_step("inv-1", "withdraw")
    crashlab.kill(WORKER)  # the same SIGKILL as the lab's own worker gets
    crashlab.clear_faults()
    crashlab.start(WORKER)

    assert asyncio.run(result(crashlab.temporal_address, workflow_id)) == "invoice inv-1: paid"
    report = crashlab.wait_settled()
    assert report.ok, report.lines()
    assert report.outcome("inv-1") == "completed"
    assert crashlab.balances()["10-002"] == 1000 + 120
