"""The invoices worker: `python -m invoices.worker`, with TEMPORAL_ADDRESS and BANK_URL."""

import asyncio
import os

from temporalio.client import Client
from temporalio.worker import Worker

from invoices.activities import deposit, withdraw
from invoices.workflows import TASK_QUEUE, PayInvoice


async def main() -> None:
    client = await Client.connect(os.environ.get("TEMPORAL_ADDRESS", "localhost:7233"))
    worker = Worker(
        client, task_queue=TASK_QUEUE, workflows=[PayInvoice], activities=[withdraw, deposit]
    )
    print(f"Invoices worker polling {TASK_QUEUE!r}", flush=True)
    await worker.run()


if __name__ == "__main__":
    asyncio.run(main())
