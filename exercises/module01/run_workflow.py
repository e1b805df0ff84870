"""Module 1, with Temporal: the worker and the starter of the print-numbers workflow in one process.

    uv run run_workflow.py

It starts the workflow `print-numbers-workflow` and runs its steps, one number
at a time. Press Ctrl+C half-way and run it again: it re-attaches to the
workflow, which is still running in Temporal, and goes on at the next number.

The workflow and its activity are the lab's own code,
services/worker/print_numbers.py (`make print-numbers` runs that same file).
This process is the workflow's only worker: the lab's worker container does not
poll its task queue, so every number prints here.

TEMPORAL_ADDRESS says where Temporal is (default localhost:7233, where `make up`
puts it).
"""

import asyncio
import os
import sys
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.worker import Worker

# Make the lab's services/ directory importable: the workflow lives there.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "services"))

from worker.print_numbers import PrintNumbersWorkflow, print_number
from worker.shared import PRINT_NUMBERS_TASK_QUEUE_NAME, PRINT_NUMBERS_WORKFLOW_ID

TEMPORAL_ADDRESS = os.environ.get("TEMPORAL_ADDRESS", "localhost:7233")


async def main() -> int:
    try:
        client = await Client.connect(TEMPORAL_ADDRESS)
    except RuntimeError as err:
        print(
            f"Cannot reach Temporal at {TEMPORAL_ADDRESS}. Is the lab up? (`make up` in the "
            f"lab's directory; TEMPORAL_ADDRESS says where Temporal is.)\n(The SDK said: {err})",
            file=sys.stderr,
        )
        return 1

    # The worker: it polls the task queue and runs the workflow's steps in this process.
    worker = Worker(
        client,
        task_queue=PRINT_NUMBERS_TASK_QUEUE_NAME,
        workflows=[PrintNumbersWorkflow],
        activities=[print_number],
        # If this process dies, Temporal hands the workflow to the next worker
        # after 1 s instead of the default 10 s.
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=1),
    )
    async with worker:
        # The starter: start the workflow, or re-attach to it if it is already running.
        handle: WorkflowHandle[PrintNumbersWorkflow, str]
        try:
            handle = await client.start_workflow(
                PrintNumbersWorkflow.run,
                id=PRINT_NUMBERS_WORKFLOW_ID,
                task_queue=PRINT_NUMBERS_TASK_QUEUE_NAME,
            )
            print(f"Started workflow {PRINT_NUMBERS_WORKFLOW_ID}.", flush=True)
        except WorkflowAlreadyStartedError:
            handle = client.get_workflow_handle_for(
                PrintNumbersWorkflow.run, PRINT_NUMBERS_WORKFLOW_ID
            )
            print(
                f"Workflow {PRINT_NUMBERS_WORKFLOW_ID} is already running: "
                "continuing where it stopped.",
                flush=True,
            )
        watcher = asyncio.create_task(warn_if_another_worker_runs_steps(handle, worker))
        try:
            print(await handle.result(), flush=True)
        finally:
            watcher.cancel()
    return 0


async def warn_if_another_worker_runs_steps(
    handle: WorkflowHandle[PrintNumbersWorkflow, str], worker: Worker
) -> None:
    """Say so when a step ran on a worker other than this process.

    Another copy of this script (or `make print-numbers`) running in a second
    terminal polls the same task queue and takes some of the steps: their
    numbers print there instead.
    """
    me = worker.client.identity
    # Only steps from now on: earlier ones ran on the process you stopped.
    before = (await handle.describe()).raw_description.workflow_execution_info.history_length
    async for event in handle.fetch_history_events(wait_new_event=True):
        if event.event_id > before and event.HasField("activity_task_started_event_attributes"):
            identity = event.activity_task_started_event_attributes.identity
            if identity != me:
                print(
                    f"A step ran on another worker ({identity}), so its number is not "
                    "printed here. Is run_workflow.py (or `make print-numbers`) running "
                    "in another terminal too? Stop that one for this exercise.",
                    flush=True,
                )
                return


def run() -> int:
    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        print(
            f"\nStopped. The workflow {PRINT_NUMBERS_WORKFLOW_ID} waits in Temporal: "
            "run `uv run run_workflow.py` again to carry on.",
            flush=True,
        )
        return 130


if __name__ == "__main__":
    code = run()
    # Leave at once: skipping the interpreter's teardown avoids a rare crash
    # message from the Temporal SDK's background threads after Ctrl+C.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
