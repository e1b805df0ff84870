"""``python -m starter <command>``: start the lab's workflows and wait for their results.

Exit codes: 0 success, 1 the workflow failed, 2 bad input or a service cannot be reached.
Human progress goes to stderr; results go to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import sys
import uuid
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import httpx
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.common import RawValue, WorkflowIDReusePolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    FailureError,
    WorkflowAlreadyStartedError,
)
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from bank.client import BankClient, BankError
from bank.errors import ErrorCode
from bank.models import MAX_AMOUNT, Account, amount_problem
from worker.config import (
    BankSettings,
    ConfigError,
    TemporalSettings,
    connect,
    exit_now,
    poller_identities,
    quiet_runtime,
    workflow_ui_link,
)
from worker.print_numbers import PrintNumbersWorkflow, print_number
from worker.shared import (
    MONEY_TRANSFER_TASK_QUEUE_NAME,
    MONEY_TRANSFER_WORKFLOW,
    PRINT_NUMBERS_TASK_QUEUE_NAME,
    PRINT_NUMBERS_WORKFLOW,
    PRINT_NUMBERS_WORKFLOW_ID,
    InvalidPayment,
    PaymentDetails,
    parse_payment,
)
from worker.tuning import STICKY_QUEUE_TIMEOUT

T = TypeVar("T")

EXIT_OK = 0
EXIT_WORKFLOW_FAILED = 1
EXIT_BAD_INPUT = 2  # also: Temporal or the bank cannot be reached

# How long the starter waits for Temporal to answer before it gives up.
CONNECT_WAIT = 10.0  # seconds
# When to look whether any worker polls the task queue, while waiting for a result.
NO_WORKER_CHECK_AFTER = 3.0  # seconds
NO_WORKER_CHECK_EVERY = 10.0  # seconds
# How long the starter keeps waiting for a result while Temporal is unreachable.
TEMPORAL_GONE_WAIT = 120.0  # seconds


class AccountBook(Protocol):
    """What the starter asks the bank: bank.client.BankClient has it."""

    async def account(self, account_id: str) -> Account: ...

    async def accounts(self) -> list[Account]: ...


class Failed(Exception):
    """Stop with this message on stderr and this exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def say(message: str) -> None:
    """Progress for people: stderr, so stdout holds only the result."""
    print(message, file=sys.stderr, flush=True)


# --- the command line ------------------------------------------------------


def dollars(text: str) -> int:
    amount = int(text) if re.fullmatch(r"[0-9]+", text.strip()) else None
    if amount is None or amount_problem(amount) is not None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an amount: give a whole number of dollars greater than 0 "
            f"(at most {MAX_AMOUNT}), such as 250"
        )
    return amount


def attempts(text: str) -> int:
    if not re.fullmatch(r"[0-9]+", text.strip()):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of attempts: give 0 (until it succeeds) or more"
        )
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m starter",
        description="Start the lab's workflows on Temporal and wait for their results.",
        epilog=(
            "Environment: TEMPORAL_ADDRESS (default localhost:7233), TEMPORAL_NAMESPACE "
            "(default default) and the other TEMPORAL_* client settings, BANK_URL "
            "(default http://bank:8000), TEMPORAL_UI_URL (default http://localhost:8080). "
            "Exit codes: 0 success, 1 the workflow failed, 2 bad input or a service "
            "cannot be reached."
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    transfer = commands.add_parser(
        "transfer",
        help="move money between two bank accounts and wait for the result",
        description=(
            "Start a MoneyTransfer workflow: withdraw from one account, deposit into the "
            "other, refund if the deposit fails for good. Checks the input first; starts "
            "nothing when it is wrong. If a transfer with the same workflow id is running, "
            "re-attaches to it; if it already ran, shows how it ended and runs nothing again "
            "(a reference id moves money at most once)."
        ),
    )
    transfer.add_argument(
        "--from", dest="source", default="85-150", metavar="ACCOUNT", help="default 85-150"
    )
    transfer.add_argument(
        "--to", dest="target", default="43-812", metavar="ACCOUNT", help="default 43-812"
    )
    transfer.add_argument(
        "--amount", type=dollars, default=250, help="whole dollars, more than 0 (default 250)"
    )
    transfer.add_argument(
        "--reference-id",
        help="the transfer's reference id; the bank's idempotency keys come from it "
        "(default: a fresh UUID)",
    )
    transfer.add_argument(
        "--attempts",
        type=attempts,
        default=0,
        metavar="N",
        help="how many times withdraw and deposit are tried; 0 means until they succeed "
        "(default 0)",
    )
    transfer.add_argument("--workflow-id", help="default: transfer-<reference id>")
    transfer.add_argument(
        "--task-queue",
        default=MONEY_TRANSFER_TASK_QUEUE_NAME,
        help=f"default {MONEY_TRANSFER_TASK_QUEUE_NAME}",
    )
    transfer.add_argument(
        "--no-wait",
        action="store_true",
        help="start it, print the workflow id and exit without waiting for the result",
    )

    numbers = commands.add_parser(
        "print-numbers",
        help="run (or re-attach to) the module-1 workflow that prints 1 to 10",
        description="Start PrintNumbersWorkflow, or re-attach to it if it runs, and wait.",
    )
    numbers.add_argument("--workflow-id", default=PRINT_NUMBERS_WORKFLOW_ID)
    numbers.add_argument("--task-queue", default=PRINT_NUMBERS_TASK_QUEUE_NAME)
    numbers.add_argument(
        "--pause",
        type=float,
        metavar="SECONDS",
        help="pause between numbers (default: the workflow's own, 3 s)",
    )

    commands.add_parser(
        "balances",
        help="show every account's balance",
        description="Ask the bank for every account's balance.",
    )
    return parser


# --- the commands ----------------------------------------------------------


async def run(
    argv: Sequence[str] | None = None,
    *,
    client: Client | None = None,
    bank: AccountBook | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """The whole starter. Tests pass their own client, bank and environment."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help, or argparse's own "error:" message
        return exit_.code if isinstance(exit_.code, int) else EXIT_BAD_INPUT
    env = os.environ if env is None else env
    try:
        async with contextlib.AsyncExitStack() as stack:
            bank_settings = BankSettings.from_env(env)
            if bank is None:
                bank = await stack.enter_async_context(
                    BankClient(bank_settings.url, timeout=bank_settings.timeout)
                )
            if args.command == "balances":
                return await balances(bank, bank_settings.url)
            if args.command == "transfer":
                details = payment_details(args)
                await check_accounts(bank, bank_settings.url, args.source, args.target)
            if client is None:
                client = await connect_temporal(env)
            if args.command == "transfer":
                return await transfer(client, details, args, env)
            return await print_numbers(client, args, env)
    except Failed as err:
        say(str(err))
        return err.exit_code
    except ConfigError as err:
        say(str(err))
        return EXIT_BAD_INPUT
    except RPCError as err:  # e.g. an unknown namespace, or Temporal went away
        say(f"Temporal refused the request: {err.message} ({err.status.name})")
        return EXIT_BAD_INPUT


async def balances(bank: AccountBook, bank_url: str) -> int:
    try:
        accounts = await _ask_bank(bank.accounts(), bank_url)
    except BankError as err:
        raise Failed(f"The bank refused to list the accounts: {err.message}") from err
    for account in accounts:
        print(f"{account.id}  ${account.balance}")
    return EXIT_OK


def payment_details(args: argparse.Namespace) -> PaymentDetails:
    """The workflow's input, checked by the workflow's own rules before anything starts."""
    try:
        return parse_payment(
            PaymentDetails(
                source_account=args.source,
                target_account=args.target,
                amount=args.amount,
                reference_id=args.reference_id or str(uuid.uuid4()),
                max_attempts=args.attempts,
            )
        )
    except InvalidPayment as err:
        raise Failed(f"Nothing started: {err}") from err


async def check_accounts(bank: AccountBook, bank_url: str, source: str, target: str) -> None:
    for account_id in (source, target):
        try:
            await _ask_bank(bank.account(account_id), bank_url)
        except BankError as err:
            if err.code != ErrorCode.UNKNOWN_ACCOUNT:
                raise Failed(f"The bank refused to look up {account_id}: {err.message}") from err
            known = await _ask_bank(bank.accounts(), bank_url)
            raise Failed(
                f"Account {account_id} does not exist at the bank. "
                f"Known accounts: {', '.join(a.id for a in known)}."
            ) from err


async def _ask_bank(call: Awaitable[T], bank_url: str) -> T:
    """Await a bank call; a bank that does not answer becomes a message for people."""
    try:
        return await call
    except httpx.HTTPError as err:
        reason = str(err) or type(err).__name__
        raise Failed(
            f"Cannot reach the bank at {bank_url} ({reason}). Is the lab running? "
            "Try `make up`, then `make ps`. (BANK_URL says where the bank is.)"
        ) from err


async def connect_temporal(env: Mapping[str, str]) -> Client:
    settings = TemporalSettings.from_env(env)
    try:
        return await connect(settings, wait_seconds=CONNECT_WAIT, say=say, runtime=quiet_runtime())
    except ConnectionError as err:
        raise Failed(
            f"{err}. Is the lab running? Try `make up`, then `make ps`.\n"
            f"(The SDK said: {err.__cause__})"
        ) from err


async def transfer(
    client: Client, details: PaymentDetails, args: argparse.Namespace, env: Mapping[str, str]
) -> int:
    reference_id = details.reference_id
    workflow_id = args.workflow_id or f"transfer-{reference_id}"
    # A transfer's workflow id (from its reference id) is never run twice: a
    # second run would replay the first one's bank keys, and after a refunded
    # failure that would deposit money that was never withdrawn.
    handle, status = await _start_or_attach(
        client,
        MONEY_TRANSFER_WORKFLOW,
        [details],
        workflow_id,
        args.task_queue,
        RawValue,
        run_again_when_closed=False,
    )
    if status == WorkflowExecutionStatus.RUNNING:
        say(
            f"Transfer {workflow_id} is already running: re-attached to it "
            "(it keeps its own accounts and amount)."
        )
    elif status is not None:
        say(
            f"Transfer {workflow_id} already ran ({status.name.lower()}): here is its outcome. "
            "Nothing runs again; use a new --reference-id for a new transfer."
        )
    else:
        say(
            f"Started transfer {workflow_id}: ${details.amount} from {details.source_account} "
            f"to {details.target_account}."
        )
    if args.no_wait:
        print(workflow_id)
        return EXIT_OK
    say(f"Waiting for it to finish... (UI: {workflow_ui_link(client.namespace, workflow_id, env)})")
    try:
        result: RawValue = await _wait(client, handle, args.task_queue)
    except WorkflowFailureError as err:
        say(f"Transfer failed: {describe_failure(err)}")
        return EXIT_WORKFLOW_FAILED
    except asyncio.CancelledError:  # Ctrl+C
        again = (
            f"--workflow-id {workflow_id}"
            if args.workflow_id
            else f"--reference-id {reference_id} (make transfer REFERENCE_ID={reference_id})"
        )
        say(f"Stopped waiting; the transfer goes on. To wait for it again: {again}")
        raise
    show_result(client, result, "The transfer")
    return EXIT_OK


async def print_numbers(client: Client, args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Module 1 as the workshop runs it: the worker and the starter in this one process.

    No other worker polls the queue (the lab's worker container does not), so the
    numbers print here. Kill this process half-way and run it again: it
    re-attaches to the workflow, which goes on at the next number.
    """
    workflow_args = [] if args.pause is None else [args.pause]
    worker = Worker(
        client,
        task_queue=args.task_queue,
        workflows=[PrintNumbersWorkflow],
        activities=[print_number],
        # Killed half-way, the next run of this command gets the workflow in 1 s, not 10.
        sticky_queue_schedule_to_start_timeout=STICKY_QUEUE_TIMEOUT,
    )
    async with worker:
        handle, status = await _start_or_attach(
            client,
            PRINT_NUMBERS_WORKFLOW,
            workflow_args,
            args.workflow_id,
            args.task_queue,
            RawValue,
            run_again_when_closed=True,  # the exercise is run again and again
        )
        verb = "Started" if status is None else "Re-attached to the running"
        say(f"{verb} workflow {args.workflow_id}: this process prints 1 to 10. Waiting...")
        say(f"(UI: {workflow_ui_link(client.namespace, args.workflow_id, env)})")
        try:
            result: RawValue = await _wait(client, handle, args.task_queue)
        except WorkflowFailureError as err:
            say(f"Workflow failed: {describe_failure(err)}")
            return EXIT_WORKFLOW_FAILED
        except asyncio.CancelledError:  # Ctrl+C
            say("Stopped. The workflow waits in Temporal: run the same command to carry on.")
            raise
    show_result(client, result, "The workflow")
    return EXIT_OK


# --- helpers ---------------------------------------------------------------


async def _start_or_attach(
    client: Client,
    workflow: str,
    args: Sequence[Any],
    workflow_id: str,
    task_queue: str,
    result_type: type,
    *,
    run_again_when_closed: bool,
) -> tuple[WorkflowHandle[Any, Any], WorkflowExecutionStatus | None]:
    """Start the workflow, or attach to the one that already has this id.

    Returns the handle and, when it attached, that workflow's status (RUNNING, or
    how it ended when ``run_again_when_closed`` is false); None when it started one.
    """
    policy = (
        WorkflowIDReusePolicy.ALLOW_DUPLICATE
        if run_again_when_closed
        else WorkflowIDReusePolicy.REJECT_DUPLICATE
    )
    try:
        handle: WorkflowHandle[Any, Any] = await client.start_workflow(
            workflow,
            args=args,
            id=workflow_id,
            task_queue=task_queue,
            result_type=result_type,
            id_reuse_policy=policy,
        )
        return handle, None
    except WorkflowAlreadyStartedError:
        handle = client.get_workflow_handle(workflow_id, result_type=result_type)
        return handle, (await handle.describe()).status


async def _wait(client: Client, handle: WorkflowHandle[Any, Any], task_queue: str) -> Any:
    watcher = asyncio.create_task(_warn_while_no_worker(client, task_queue))
    try:
        return await result_across_outages(handle)
    finally:
        watcher.cancel()


class _HasResult(Protocol):
    async def result(self) -> Any: ...


async def result_across_outages(handle: _HasResult) -> Any:
    """The workflow's result, waiting through a Temporal restart (up to TEMPORAL_GONE_WAIT).

    The workflow itself survives the restart: only our connection does not.
    """
    deadline: float | None = None
    while True:
        try:
            return await handle.result()
        except RPCError as err:
            if err.status not in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
                raise
            now = asyncio.get_running_loop().time()
            if deadline is None:
                deadline = now + TEMPORAL_GONE_WAIT
                say(
                    f"Lost contact with Temporal ({err.message}). The workflow is safe in "
                    f"Temporal's history; waiting up to {TEMPORAL_GONE_WAIT:g} s for Temporal..."
                )
            elif now > deadline:
                raise
        await asyncio.sleep(1)


async def _warn_while_no_worker(client: Client, task_queue: str) -> None:
    """Say so when no worker polls the task queue: the workflow cannot make progress."""
    await asyncio.sleep(NO_WORKER_CHECK_AFTER)
    warned = False
    while True:
        try:
            pollers = await poller_identities(client, task_queue)
        except Exception:  # only a hint: never let it break the wait
            pollers = ["unknown"]
        if not pollers and not warned:
            say(
                f"No worker is polling task queue {task_queue} - is the worker running? "
                "(`make up`, `make logs`) The workflow waits; it continues once one is."
            )
        warned = not pollers
        await asyncio.sleep(NO_WORKER_CHECK_EVERY)


def show_result(client: Client, result: RawValue, what: str) -> None:
    """Print a workflow's result on stdout: the text as it is, anything else explained.

    The lab's workflows return text, and so do the tutorial's, but the worker that
    ran this one may run other code (an older lab's, someone's own).
    """
    try:
        value = client.data_converter.payload_converter.from_payload(result.payload)
    except Exception as err:  # an encoding this client has no converter for
        encoding = result.payload.metadata.get("encoding", b"unknown").decode(errors="replace")
        say(
            f"{what} completed, but its result ({encoding}) cannot be read here: {err}. "
            "The Temporal UI shows it under Input and Results."
        )
        return
    if isinstance(value, str):
        print(value)
        return
    say(
        f"{what} completed, but its result is not the text this lab's workflows return: "
        "the worker that ran it runs other code. Here it is as it came:"
    )
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


def describe_failure(err: WorkflowFailureError) -> str:
    """One line from the failure's cause chain, for people."""
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.type in (
        "InvalidTransfer",
        "TransferFailed",
        "RefundFailed",
    ):
        return cause.message  # the workflow already wrote the whole story
    messages: list[str] = []
    current: BaseException | None = cause
    while current is not None:
        if isinstance(current, FailureError) and not isinstance(current, ActivityError):
            text = current.message.strip()
            if text and text not in messages:
                messages.append(text)
        current = current.cause if isinstance(current, FailureError) else None
    return ": ".join(messages) or str(err)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return asyncio.run(run(argv))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    exit_now(main())
