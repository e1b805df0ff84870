"""The activities: the only code here that talks to the outside world (the bank).

Each bank call carries an idempotency key made from the transfer's reference id
and the step, so when Temporal retries a step (after a timeout, or after the
worker was killed half-way) the bank answers "already done" instead of moving
the money a second time.
"""

import asyncio
from collections.abc import Awaitable
from typing import Protocol, TypeVar

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from bank.client import BankError
from bank.errors import PERMANENT, ErrorCode
from bank.models import Movement
from worker.shared import PaymentDetails, StepResult, idempotency_key

T = TypeVar("T")

# How often an activity tells Temporal "still alive" while it waits for the bank.
HEARTBEAT_EVERY = 0.5  # seconds; the workflow's heartbeat_timeout is 2 s


class Bank(Protocol):
    """What the activities need from the bank: bank.client.BankClient has it."""

    async def withdraw(self, account_id: str, amount: int, idempotency_key: str) -> Movement: ...

    async def deposit(self, account_id: str, amount: int, idempotency_key: str) -> Movement: ...

    async def void(self, idempotency_key: str) -> Movement | None: ...


class BankingActivities:
    def __init__(self, bank: Bank) -> None:
        self.bank = bank

    @activity.defn
    async def withdraw(self, data: PaymentDetails) -> StepResult:
        activity.logger.info(f"Withdrawing ${data.amount} from account {data.source_account}.")
        key = idempotency_key(data.reference_id, "withdraw")
        call = self.bank.withdraw(data.source_account, data.amount, key)
        movement = await self._call_bank("Withdrawal", call)
        return _step_result(movement)

    @activity.defn
    async def deposit(self, data: PaymentDetails) -> StepResult:
        activity.logger.info(f"Depositing ${data.amount} into account {data.target_account}.")
        key = idempotency_key(data.reference_id, "deposit")
        # To introduce a bug, change `self.bank.deposit` on the next line to
        # `self.deposit_that_fails` and restart the worker
        # (`docker compose -f compose/compose.yaml restart worker`: it runs this file
        # from disk). Change it back and restart it again to fix the bug: the
        # waiting transfer completes.
        call = self.bank.deposit(data.target_account, data.amount, key)
        movement = await self._call_bank("Deposit", call)
        return _step_result(movement)

    @activity.defn
    async def refund(self, data: PaymentDetails) -> StepResult:
        activity.logger.info(f"Refunding ${data.amount} to account {data.source_account}.")
        key = idempotency_key(data.reference_id, "refund")
        # A refund must never give up (that would lose the money), so every error
        # it meets is retryable, even one the bank calls permanent.
        call = self.bank.deposit(data.source_account, data.amount, key)
        movement = await self._call_bank("Refund", call, always_retry=True)
        return _step_result(movement)

    @activity.defn
    async def settle(self, key: str) -> StepResult | None:
        """Ask the bank, for good, whether the step with this key moved money.

        After a step failed the workflow cannot tell "refused" from "done, but the
        answer was lost" (a timeout, a dropped response, a worker killed half-way),
        and an earlier attempt may even still be on its way to the bank. The bank's
        void answers with the movement if there is one, and otherwise makes sure
        there never will be. Like the refund, it retries until the bank answers.
        """
        activity.logger.info(f"Asking the bank whether {key} moved money.")
        movement = await self._call_bank("Settling", self.bank.void(key), always_retry=True)
        if movement is None:
            activity.logger.info(f"It did not, and now it never will: {key} is void.")
            return None
        activity.logger.info(f"It did: {key} is ledger seq {movement.seq}.")
        return _step_result(movement)

    async def deposit_that_fails(
        self, account_id: str, amount: int, idempotency_key: str
    ) -> Movement:
        """A deposit with a bug in it: the tutorial's "introduce a bug" exercise."""
        raise RuntimeError("This deposit has failed.")

    async def _call_bank(self, step: str, call: Awaitable[T], *, always_retry: bool = False) -> T:
        """Wait for the bank, heartbeating, and turn its errors into Temporal errors."""
        try:
            movement = await _heartbeat_while(call)
        except Exception as err:
            error = _temporal_error(err, always_retry=always_retry)
            activity.logger.error(f"{step} failed: {error.message}")
            # Not `from err`: the HTTP client's deep traceback would travel with the
            # failure and outgrow Temporal's size limit, and the UI would then show
            # "Failure exceeds size limit" instead of this message.
            raise error from None
        if isinstance(movement, Movement) and movement.replayed:
            activity.logger.info(
                f"The bank had already done this ({movement.idempotency_key}): "
                "nothing moved a second time."
            )
        return movement


async def _heartbeat_while(call: Awaitable[T]) -> T:
    """Await ``call``, heartbeating every HEARTBEAT_EVERY seconds until it finishes.

    The heartbeats are how Temporal notices quickly that a worker died in the
    middle of a bank call: no heartbeat for 2 s and the server retries the
    activity on another (or the restarted) worker. The first one waits a whole
    HEARTBEAT_EVERY: the server counts the activity's start as a heartbeat, and
    most bank calls take milliseconds, so a heartbeat at once would only cost
    the server a write per step.
    """
    task = asyncio.ensure_future(call)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=HEARTBEAT_EVERY)
            if done:
                return task.result()
            activity.heartbeat()
    finally:
        task.cancel()


def _temporal_error(err: Exception, *, always_retry: bool = False) -> ApplicationError:
    """Say whether Temporal should retry: only errors a retry might fix are retryable."""
    if isinstance(err, BankError):
        if err.code == ErrorCode.UNKNOWN_ACCOUNT:
            error_type = "InvalidAccountError"
        elif err.code == ErrorCode.INSUFFICIENT_FUNDS:
            error_type = "InsufficientFundsError"
        elif err.code in PERMANENT:
            error_type = "InvalidRequestError"
        else:  # injected_fault, bank_down: the bank may work again soon
            error_type = "BankUnavailableError"
        permanent = err.code in PERMANENT
        return ApplicationError(
            err.message,
            err.code.value,
            type=error_type,
            non_retryable=permanent and not always_retry,
        )
    if isinstance(err, httpx.TimeoutException):
        message = str(err) or f"The bank did not answer in time ({type(err).__name__})."
        return ApplicationError(message, type="BankTimeoutError")
    if isinstance(err, httpx.TransportError):
        reason = str(err) or type(err).__name__
        return ApplicationError(f"Cannot reach the bank: {reason}", type="BankUnreachableError")
    # Anything else, such as deposit_that_fails: a bug that a fix and a retry can cure.
    return ApplicationError(str(err) or type(err).__name__, type=type(err).__name__)


def _step_result(movement: Movement) -> StepResult:
    return StepResult(
        transaction_seq=movement.seq,
        account_id=movement.account_id,
        amount=movement.amount,
        idempotency_key=movement.idempotency_key,
    )
