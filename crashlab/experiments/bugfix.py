"""The tutorial's experiment 2, "Live Bug Fixing": a deposit that fails, fixed while it retries.

Two ways to break the deposit:

- ``switch``: the lab's way, a fault on the bank (every deposit fails) that is
  cleared to "fix" it;
- ``code``: the tutorial's own way, word for word: stop the worker, edit
  deposit() in activities.py to call the failing method, start the worker, watch
  it fail, put the line back, restart the worker; the next retry succeeds.

Either way the withdraw runs once and is never repeated while the deposit
retries, and the transfer completes once the bug is gone.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from temporalio.client import Client, WorkflowExecutionStatus

from bank.client import BankClient
from bank.models import Fault, FaultMode
from crashlab.constants import AMOUNT, SOURCE, TARGET
from crashlab.experiments.kit import (
    ExperimentError,
    Narrator,
    Outcome,
    Say,
    TransferHandle,
    check_invariants,
    check_moved_never,
    check_moved_once,
    cleanup,
    ensure_funds,
    ledger_after,
    ledger_end,
    lever,
    lines_with,
    now,
    prepare,
    records_named,
    result_within,
    rows,
    seconds,
    short_id,
    start_transfer,
    status_name,
    wait_for,
    wait_pending,
    worker_log,
    worker_source,
)
from crashlab.stack import Stack
from worker.shared import PaymentDetails

NAME = "bugfix"
TITLE = "Live bug fixing: the deposit fails, fixed while it retries (tutorial part 2, experiment 2)"
WAYS = ("switch", "code")
# The tutorial: "watch Temporal retry automatically".
RETRIES_TO_SEE = 3
# The tutorial's "introduce the bug": deposit() calls the failing method instead.
WORKING_CALL = "self.bank.deposit("
FAILING_CALL = "self.deposit_that_fails("
# The deposit activity's source, up to the next method of the class.
DEPOSIT_METHOD = r"@activity\.defn\s+async def deposit\(self.*?(?=\n    (?:@|async def |def ))"


async def run(
    stack: Stack,
    say: Say,
    *,
    ways: Sequence[str] = WAYS,
    source: str = SOURCE,
    target: str = TARGET,
    amount: int = AMOUNT,
) -> Outcome:
    unknown = [way for way in ways if way not in WAYS]
    if unknown or not ways:
        raise ExperimentError(f"--way takes switch or code, not {', '.join(unknown)}.")
    outcome = Outcome(NAME)
    n = Narrator(say, outcome)
    await prepare(stack, n)
    client = await stack.temporal()
    try:
        async with stack.bank() as bank:
            for way in ways:
                await ensure_funds(client, bank, n, source, target, amount)
                details = PaymentDetails(source, target, amount, f"bugfix-{way}-{short_id()}")
                start_seq = await ledger_end(bank)
                if way == "switch":
                    handle = await _by_switch(stack, n, client, bank, details, start_seq)
                else:
                    handle = await _by_code(stack, n, client, bank, details, start_seq)
                await _tutorial_output(stack, n, details)
                await _verify(n, client, bank, handle, details, start_seq)
    finally:
        await cleanup(stack)
    return outcome


async def _by_switch(
    stack: Stack,
    n: Narrator,
    client: Client,
    bank: BankClient,
    details: PaymentDetails,
    start_seq: int,
) -> TransferHandle:
    n.step(
        "The bug, as a switch on the bank: every deposit fails "
        '(PUT /faults/deposit {"mode": "error"}).'
    )
    await bank.set_fault("deposit", Fault(FaultMode.ERROR))
    n.on_dashboard(
        "retries of deposit climb while the fault is on and fall to 0 once it is fixed; "
        "the money dips by the amount withdrawn until the deposit lands."
    )
    handle = await _start_and_watch(stack, n, client, bank, details, start_seq)
    n.step("Fix it: clear the fault (DELETE /faults/deposit). The next retry picks it up.")
    fixed = time.monotonic()
    await bank.clear_faults("deposit")
    await _completed_after_fix(n, handle, fixed, "switch")
    return handle


async def _by_code(
    stack: Stack,
    n: Narrator,
    client: Client,
    bank: BankClient,
    details: PaymentDetails,
    start_seq: int,
) -> TransferHandle:
    path = worker_source(stack) / "activities.py"
    original = _read(path)
    working, failing = _bug_lines(original, path)
    buggy = original.replace(working, failing, 1)
    worker_has_bug = False
    try:
        n.step("Stop the worker (the tutorial's Ctrl+C in Terminal 2): `docker compose stop`.")
        await lever(stack.stop, "worker")
        n.step(f"Introduce the bug: edit deposit() in {path}.")
        n.note(f"-{working.rstrip()}\n+{failing.rstrip()}")
        path.write_text(buggy)
        n.step(
            "Start the worker. It runs the edited file: the lab mounts the worker's code into "
            "its container, so no image rebuild is needed."
        )
        worker_has_bug = True
        await lever(stack.start, "worker")
        logged_from = now()
        handle = await _start_and_watch(stack, n, client, bank, details, start_seq)
        log = await _tutorial_log(stack, logged_from, details)
        n.note("The worker's log (`make logs`), as in the tutorial:")
        n.note("\n".join(f"  {line}" for line in log.shown[:7]))
        n.check(
            "the worker log shows one withdraw, then the deposit failing again and again",
            log.as_in_tutorial,
            f"{len(log.withdrawing)} 'Withdrawing' line, {len(log.depositing)} 'Depositing $"
            f"{details.amount} into account {details.target_account}.' lines, "
            f"{len(log.failed)} 'This deposit has failed.' lines",
        )

        n.step("Fix the bug: put the working line back, then restart the worker (stop, start).")
        path.write_text(original)
        n.note(f"-{failing.rstrip()}\n+{working.rstrip()}")
        fixed = time.monotonic()
        await lever(stack.stop, "worker")
        await lever(stack.start, "worker")
        worker_has_bug = False
        n.note(f"The worker runs the fixed code again ({seconds(time.monotonic() - fixed)}).")
        await _completed_after_fix(n, handle, fixed, "code")
        return handle
    finally:
        if _read(path) != original:
            path.write_text(original)
        if worker_has_bug:  # it started with the bug: restart it with the fix
            await lever(stack.stop, "worker")
            await lever(stack.start, "worker")


@dataclass
class _TutorialLog:
    withdrawing: list[str]
    depositing: list[str]
    failed: list[str]
    shown: list[str]

    @property
    def as_in_tutorial(self) -> bool:
        return (
            len(self.withdrawing) == 1
            and len(self.depositing) >= RETRIES_TO_SEE
            and len(self.failed) >= RETRIES_TO_SEE
        )


async def _tutorial_log(stack: Stack, since: datetime, details: PaymentDetails) -> _TutorialLog:
    """The worker's log lines the tutorial shows, once they are all there (Docker may
    deliver the last of them a moment after Temporal heard of the failure)."""

    def read() -> _TutorialLog:
        lines = worker_log(stack, since)
        withdrawing = lines_with(lines, f"Withdrawing ${details.amount} from account ")
        depositing = lines_with(
            lines, f"Depositing ${details.amount} into account {details.target_account}."
        )
        failed = lines_with(lines, "This deposit has failed.")
        wanted = {*withdrawing, *depositing, *failed}
        return _TutorialLog(
            withdrawing, depositing, failed, [line for line in lines if line in wanted]
        )

    async def probe() -> _TutorialLog | None:
        log = await lever(read)
        return log if log.as_in_tutorial else None

    try:
        return await wait_for("the worker's log", probe, within=10, every=0.5)
    except ExperimentError:
        return await lever(read)  # not as in the tutorial: the check says how not


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as err:
        raise ExperimentError(
            f"Cannot read the worker's code at {path} ({err}). The code way edits the file the "
            "worker container runs: run this on the machine that runs the lab."
        ) from err


def _bug_lines(source: str, path: Path) -> tuple[str, str]:
    """(the working line of deposit(), the same line calling the failing method)."""
    body = re.search(DEPOSIT_METHOD, source, re.S)
    if body is None:
        raise ExperimentError(f"No deposit() method in {path}: is it the lab's activities.py?")
    if FAILING_CALL in body.group(0):
        raise ExperimentError(
            f"deposit() in {path} already calls {FAILING_CALL.rstrip('(')} (a bug left from "
            f"an earlier run?). Put `{WORKING_CALL}` back (see the comment in deposit()), "
            "restart the worker, and run this again."
        )
    lines = [line for line in body.group(0).splitlines(keepends=True) if WORKING_CALL in line]
    if len(lines) != 1:
        raise ExperimentError(
            f"deposit() in {path} has {len(lines)} calls of {WORKING_CALL.rstrip('(')}, not "
            "one: this experiment only knows how to edit the lab's own version."
        )
    return lines[0], lines[0].replace(WORKING_CALL, FAILING_CALL, 1)


async def _start_and_watch(
    stack: Stack,
    n: Narrator,
    client: Client,
    bank: BankClient,
    details: PaymentDetails,
    start_seq: int,
) -> TransferHandle:
    n.step(
        f"Start a transfer: ${details.amount} from {details.source_account} to "
        f"{details.target_account}, reference id {details.reference_id}."
    )
    handle = await start_transfer(client, details)
    n.look(f"the deposit's retries in the Temporal UI: {stack.workflow_url(handle.id)}")
    # Attempt N is pending once N - 1 attempts have failed.
    info = await wait_pending(handle, "deposit", within=30, min_attempt=RETRIES_TO_SEE + 1)
    n.note(
        f"The deposit has failed {info.attempt - 1} times; Temporal keeps retrying it "
        f"(attempt {info.attempt} is next). The last error: "
        f"{info.last_failure.message or 'see the UI'}"
    )
    movements = await ledger_after(bank, start_seq)
    withdrawn = rows(movements, details.reference_id, "withdraw")
    deposited = rows(movements, details.reference_id, "deposit")
    n.check(
        "while the deposit retries, the withdraw is done, once, and is not run again",
        len(withdrawn) == 1 and not deposited and await _withdraw_done_once(handle),
        f"ledger row {withdrawn[0].seq if withdrawn else '-'} for the withdraw, "
        f"{len(deposited)} for the deposit; the withdraw activity completed on attempt 1",
    )
    return handle


async def _withdraw_done_once(handle: TransferHandle) -> bool:
    withdraws = records_named(await handle.fetch_history(), "withdraw")
    return len(withdraws) == 1 and withdraws[0].outcome == "completed" and withdraws[0].attempt == 1


async def _completed_after_fix(n: Narrator, handle: TransferHandle, fixed: float, way: str) -> None:
    await result_within(handle, 60, "The transfer")
    took = time.monotonic() - fixed
    n.note(f"The next retry succeeded: the transfer completed {seconds(took)} after the fix.")
    n.figure(f"fix_to_completion_seconds_{way}", took, f"{seconds(took)} from the fix to done")


async def _tutorial_output(stack: Stack, n: Narrator, details: PaymentDetails) -> None:
    """The tutorial's Terminal 3: the starter's printout of the finished transfer."""
    n.step(
        "Ask the starter for the transfer, as the tutorial's Terminal 3 shows it "
        f"(`make transfer REFERENCE_ID={details.reference_id}` re-attaches, runs nothing again)."
    )
    result = await lever(stack.starter, "transfer", "--reference-id", details.reference_id)
    printed = result.stdout.splitlines()
    n.note("\n".join(printed) or (result.stderr.strip() or "(nothing)"))
    step = (
        f"{{'amount': {details.amount}, 'receiver': '{details.target_account}', "
        f"'reference_id': '{details.reference_id}', 'sender': '{details.source_account}'}}"
    )
    n.check(
        "the starter prints the tutorial's result: Transfer complete, the withdraw, the deposit",
        result.returncode == 0
        and printed == ["Transfer complete.", f"Withdraw: {step}", f"Deposit: {step}"],
        f"exit code {result.returncode}, {len(printed)} lines on stdout",
    )


async def _verify(
    n: Narrator,
    client: Client,
    bank: BankClient,
    handle: TransferHandle,
    details: PaymentDetails,
    start_seq: int,
) -> None:
    n.step("Verify with the workflow's history and the bank's ledger.")
    described = await handle.describe()
    n.check(
        "the transfer completed",
        described.status == WorkflowExecutionStatus.COMPLETED,
        f"status {status_name(described.status)}",
    )
    history = await handle.fetch_history()
    withdraws = records_named(history, "withdraw")
    deposits = records_named(history, "deposit")
    n.check(
        "the withdraw ran once: Temporal did not repeat it while the deposit retried",
        len(withdraws) == 1 and withdraws[0].attempt == 1,
        f"{len(withdraws)} withdraw activity, attempt {withdraws[0].attempt if withdraws else 0}",
    )
    n.check(
        f"the deposit failed {RETRIES_TO_SEE} times or more, and was retried until the fix",
        len(deposits) == 1 and deposits[0].attempt > RETRIES_TO_SEE,
        f"completed on attempt {deposits[0].attempt if deposits else 0}",
    )
    movements = await ledger_after(bank, start_seq)
    check_moved_once(
        n, movements, details.reference_id, "withdraw", details.source_account, details.amount
    )
    check_moved_once(
        n, movements, details.reference_id, "deposit", details.target_account, details.amount
    )
    check_moved_never(n, movements, details.reference_id, "refund")
    await check_invariants(n, client, bank, {details.reference_id: "completed"})
