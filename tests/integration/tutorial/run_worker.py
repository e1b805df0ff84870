"""The tutorial's worker: its own workflow and activities, on the tutorial's queue."""

import asyncio
import os

from activities import BankingActivities
from shared import MONEY_TRANSFER_TASK_QUEUE_NAME
from temporalio.client import Client
from temporalio.worker import Worker
from workflows import MoneyTransfer


async def main() -> None:
    address = os.environ.get("TEMPORAL_ADDRESS", "localhost:7233")
    client = await Client.connect(address, namespace="default")
    activities = BankingActivities()
    worker = Worker(
        client,
        task_queue=MONEY_TRANSFER_TASK_QUEUE_NAME,
        workflows=[MoneyTransfer],
        activities=[activities.withdraw, activities.deposit, activities.refund],
    )
    await worker.run()


if __name__ == "__main__":
    asyncio.run(main())
