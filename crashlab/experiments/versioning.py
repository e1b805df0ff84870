"""Change the workflow's code while transfers run: a non-determinism error, then a patch.

Activities may change under a running workflow (the live bug fix does that);
the workflow's own code may not, not freely. A worker that takes over a running
workflow replays its history through the code it has now, and that code must
make the same decisions in the same order. Here transfers wait between their
withdraw and their deposit (the bank refuses deposits for a while), a new step
goes in between the two (a cooling-off timer), and the worker restarts: each
waiting transfer meets a non-determinism error and is stuck, Running, until the
change is made safe. Put behind ``workflow.patched``, the old transfers keep
their old path and new ones take the new one.
"""

from __future__ import annotations

import time
from pathlib import Path

from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHistory

from bank.client import BankClient
from bank.models import Fault, FaultMode
from crashlab import status as views
from crashlab.experiments.kit import (
    ExperimentError,
    Narrator,
    Outcome,
    Say,
    TransferHandle,
    check_invariants,
    check_moved_once,
    cleanup,
    describe_event,
    ledger_after,
    ledger_end,
    lever,
    prepare,
    result_within,
    seconds,
    short_id,
    start_transfer,
    status_name,
    wait_for,
    wait_pending,
    worker_source,
)
from crashlab.stack import Stack
from worker.shared import PaymentDetails

NAME = "versioning"
TITLE = "Change the workflow while transfers run: a non-determinism error, then workflow.patched"
SOURCE, TARGET = "10-007", "10-008"
PATCH_ID = "cooling-off"
# Where the new step goes in the lab's workflows.py: right before the deposit.
ANCHOR = "        try:\n            deposited = await workflow.execute_activity_method("
NEW_STEP = (
    "        # A cooling-off period before the money lands: a step added while transfers run.\n"
    "        await workflow.sleep(timedelta(seconds=1))\n\n"
)
PATCHED_STEP = (
    "        # A cooling-off period before the money lands, for transfers started from now on:\n"
    "        # the ones already past their withdraw replay without it.\n"
    f'        if workflow.patched("{PATCH_ID}"):\n'
    "            await workflow.sleep(timedelta(seconds=1))\n\n"
)


def with_new_step(source: str) -> str:
    """workflows.py with the cooling-off timer between withdraw and deposit."""
    return source.replace(ANCHOR, NEW_STEP + ANCHOR, 1)


def with_patched_step(source: str) -> str:
    """workflows.py with the same timer behind workflow.patched."""
    return source.replace(ANCHOR, PATCHED_STEP + ANCHOR, 1)


def without_change(source: str) -> str:
    """workflows.py as it ships, from either form above."""
    return source.replace(NEW_STEP, "", 1).replace(PATCHED_STEP, "", 1)


NON_DETERMINISTIC = WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_NON_DETERMINISTIC_ERROR


async def run(stack: Stack, say: Say, *, transfers: int = 2, amount: int = 10) -> Outcome:
    outcome = Outcome(NAME)
    n = Narrator(say, outcome)
    await prepare(stack, n)
    path = worker_source(stack) / "workflows.py"
    original = _read(path)
    if original.count(ANCHOR) != 1 or "workflow.patched(" in original:
        raise ExperimentError(
            f"{path} is not the lab's own workflows.py as the repository has it (already "
            "changed by an interrupted run?). `git checkout services/worker/workflows.py`, "
            "restart the worker (`make stop start SERVICE=worker`), and run this again."
        )
    edited = False
    client = await stack.temporal()
    try:
        async with stack.bank() as bank:
            start_seq = await ledger_end(bank)
            old = await _transfers_waiting_mid_way(stack, n, client, bank, transfers, amount)
            edited = True
            n.step(
                f"Change the workflow's code in {path}: a new step, a 1-second cooling-off "
                "timer, between withdraw and deposit. Restart the worker so that it runs it."
            )
            await _deploy(stack, n, path, NEW_STEP, with_new_step(original))
            await _stuck(stack, n, bank, old)
            n.step(
                "Make the change safe: put the new step behind "
                f'workflow.patched("{PATCH_ID}") and restart the worker.'
            )
            await _deploy(stack, n, path, PATCHED_STEP, with_patched_step(original))
            await _old_path_and_new_path(stack, n, client, bank, old, amount, start_seq)
    finally:
        if _read(path) != original:
            path.write_text(original)
        if edited:
            await lever(stack.stop, "worker")
            await lever(stack.start, "worker")
        await cleanup(stack)
    n.note(
        "The code is as it was again. `make replay` now names the new-path transfer as a "
        "non-determinism error: its history took the patched path, which this code no "
        "longer has. Keep a patch until no workflow that took either path is open."
    )
    return outcome


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as err:
        raise ExperimentError(
            f"Cannot read the worker's code at {path} ({err}). This experiment edits the file "
            "the worker container runs: run it on the machine that runs the lab."
        ) from err


async def _transfers_waiting_mid_way(
    stack: Stack, n: Narrator, client: Client, bank: BankClient, count: int, amount: int
) -> list[TransferHandle]:
    n.step(
        "Make the bank refuse deposits for a while (the deposit fault), then start "
        f"{count} transfers of ${amount} from {SOURCE} to {TARGET}: each withdraws, then "
        "waits, retrying its deposit."
    )
    await bank.set_fault("deposit", Fault(FaultMode.ERROR))
    handles = []
    for _ in range(count):
        details = PaymentDetails(SOURCE, TARGET, amount, f"versioning-old-{short_id()}")
        handles.append(await start_transfer(client, details))
    for handle in handles:
        await wait_pending(handle, "deposit", within=30, min_attempt=2)
    n.note(f"They wait between withdraw and deposit: {', '.join(h.id for h in handles)}.")
    n.look(f"one of them in the Temporal UI: {stack.workflow_url(handles[0].id)}")
    return handles


async def _deploy(stack: Stack, n: Narrator, path: Path, block: str, source: str) -> None:
    """Show the added lines, write the new workflows.py, restart the worker on it."""
    n.note("\n".join(f"+{line}" for line in block.rstrip().splitlines()))
    await lever(path.write_text, source)
    began = time.monotonic()
    await lever(stack.stop, "worker")
    await lever(stack.start, "worker")
    n.note(f"The worker runs the new code ({seconds(time.monotonic() - began)}).")


async def _stuck(stack: Stack, n: Narrator, bank: BankClient, old: list[TransferHandle]) -> None:
    n.step(
        "Let the deposits through (clear the fault). Each deposit completes, and the new "
        "worker replays its transfer's history to decide what comes next..."
    )
    await bank.clear_faults("deposit")
    n.on_dashboard(
        "the deposits' retries stop, yet transfers ending stays flat for these: their "
        "workflow task fails on replay, which is no activity retry, only the worker's log "
        "and `make status` show it."
    )
    failures = [await _nondeterminism(handle) for handle in old]
    if failures[0] is not None:
        n.note(f"In {old[0].id}: {failures[0][0]}: {failures[0][1]}")
    n.check(
        "each waiting transfer's history shows a non-determinism error (WorkflowTaskFailed, "
        "cause NonDeterministicError)",
        all(f is not None for f in failures),
        f"{sum(f is not None for f in failures)} of {len(old)}",
    )
    statuses = [(await h.describe()).status for h in old]
    n.check(
        "they stay Running, stuck: the worker fails their workflow task on every retry",
        all(s == WorkflowExecutionStatus.RUNNING for s in statuses),
        ", ".join(status_name(s) for s in statuses),
    )

    async def named() -> list[str] | None:
        report = await views.collect(stack)
        found = [w for w in report.warnings() if "NON-DETERMINISM ERROR" in w]
        return found if all(any(h.id in w for w in found) for h in old) else None

    warnings = await wait_for("`make status` to name the error", named, within=30, every=0.5)
    n.note(f"`make status` says: {warnings[0]}")
    n.check(
        "`make status` names each one's non-determinism error, with the fix",
        all("workflow.patched" in w for w in warnings),
        f"{len(warnings)} warnings",
    )
    n.look(
        "the Temporal UI: the workflow task fails with a non-determinism error, and the "
        f"workflow stays Running. {stack.workflow_url(old[0].id)}"
    )


async def _nondeterminism(handle: TransferHandle) -> tuple[str, str] | None:
    """(the WorkflowTaskFailed event in words, its message) once the history has one;
    None if it has none within half a minute."""

    async def probe() -> tuple[str, str] | None:
        history: WorkflowHistory = await handle.fetch_history()
        for event in history.events:
            failed = event.workflow_task_failed_event_attributes
            if event.HasField("workflow_task_failed_event_attributes") and (
                failed.cause == NON_DETERMINISTIC
            ):
                return describe_event(event), failed.failure.message
        return None

    try:
        return await wait_for(f"a non-determinism error in {handle.id}", probe, within=30)
    except ExperimentError:
        return None


async def _old_path_and_new_path(
    stack: Stack,
    n: Narrator,
    client: Client,
    bank: BankClient,
    old: list[TransferHandle],
    amount: int,
    start_seq: int,
) -> None:
    for handle in old:
        await result_within(handle, 60, f"The stuck transfer {handle.id}")
    n.note("The stuck transfers completed.")
    n.step("Start a new transfer: it takes the new path, cooling-off included.")
    details = PaymentDetails(SOURCE, TARGET, amount, f"versioning-new-{short_id()}")
    new = await start_transfer(client, details)
    await result_within(new, 60, "The new transfer")
    n.look(f"its history has the patch's marker and the timer: {stack.workflow_url(new.id)}")

    n.step("Verify with the histories and the bank's ledger.")
    old_paths = [_path(await h.fetch_history()) for h in old]
    n.check(
        "the old transfers finished on the old path: no patch marker, no timer",
        all(p == ["withdraw", "deposit"] for p in old_paths),
        "; ".join(" -> ".join(p) for p in old_paths),
    )
    new_path = _path(await new.fetch_history())
    n.check(
        "the new transfer took the new path: the patch's marker, the timer, then the deposit",
        new_path == ["withdraw", "marker", "timer", "deposit"],
        " -> ".join(new_path),
    )
    movements = await ledger_after(bank, start_seq)
    references = [h.id.removeprefix("transfer-") for h in [*old, new]]
    for reference_id in references:
        check_moved_once(n, movements, reference_id, "withdraw", SOURCE, amount)
        check_moved_once(n, movements, reference_id, "deposit", TARGET, amount)
    await check_invariants(n, client, bank, dict.fromkeys(references, "completed"))


def _path(history: WorkflowHistory) -> list[str]:
    """What the workflow did, in order: its steps, patch markers and timers."""
    path = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            path.append(event.activity_task_scheduled_event_attributes.activity_type.name)
        elif event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            path.append("marker")
        elif event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
            path.append("timer")
    return path
