"""Module 1: a workflow that prints 1 to 10, one activity per number.

This is the one copy of this code: exercises/module01/run_workflow.py runs it,
and so does `make print-numbers` (the starter), each as the worker and the
starter in one process, as the workshop does. The lab's worker container does
not poll its queue, so the numbers print in the terminal that started it. It
needs nothing but the Temporal SDK.

Kill the process that runs it half-way, start it again, and the workflow goes
on at the next number: Temporal recorded every finished step in the workflow's
history, and a new worker replays that history instead of starting over.
"""

from datetime import timedelta

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from worker.shared import PRINT_NUMBERS_WORKFLOW


@activity.defn
async def print_number(number: int) -> str:
    """The step's real work (here: printing). Activities are where side effects go."""
    print(number, flush=True)
    return str(number)


@workflow.defn(name=PRINT_NUMBERS_WORKFLOW)
class PrintNumbersWorkflow:
    """Print 1 to 10, pausing between numbers; kill the worker half-way to see it resume.

    Started with no argument, as the workshop does; the pause is an optional
    argument only so that tests need not wait 27 s.
    """

    @workflow.run
    async def run(self, pause_seconds: float = 3.0) -> str:
        for counter in range(1, 11):
            await workflow.execute_activity(
                print_number,
                counter,
                start_to_close_timeout=timedelta(seconds=5),
            )
            if counter < 10:
                # A durable timer: it lives on the Temporal server, not in this process.
                await workflow.sleep(pause_seconds)
        return "Workflow completed"
