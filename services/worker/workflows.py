"""The workflows: deterministic orchestration, replayed from history after a crash.

A workflow never talks to the bank itself; it asks Temporal to run activities
and records their results in the workflow's history. When the worker dies,
another one replays that history and carries on from the step it was at.
"""

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from worker.activities import BankingActivities
    from worker.shared import (
        MONEY_TRANSFER_WORKFLOW,
        InvalidPayment,
        PaymentDetails,
        StepResult,
        idempotency_key,
        parse_payment,
        transfer_summary,
    )
    from worker.tuning import FIRST_RETRY_AFTER, HEARTBEAT_TIMEOUT, RETRY_AT_LEAST_EVERY

# Longer than the bank client's own timeout (BANK_TIMEOUT, 5 s by default), so a
# slow bank shows up as the bank's timeout error rather than as Temporal's.
BANK_CALL_TIMEOUT = timedelta(seconds=15)
# HEARTBEAT_TIMEOUT (worker/tuning.py) is what makes a killed worker's activity
# come back in seconds rather than after BANK_CALL_TIMEOUT.

NON_RETRYABLE_ERRORS = ["InvalidAccountError", "InsufficientFundsError", "InvalidRequestError"]


def step_retry_policy(max_attempts: int) -> RetryPolicy:
    """Retries for withdraw and deposit.

    The interval stays short (RETRY_AT_LEAST_EVERY, 1 s) so that when you fix a bug
    or bring the bank back while a transfer is retrying, the next attempt comes soon.
    """
    return RetryPolicy(
        initial_interval=FIRST_RETRY_AFTER,
        backoff_coefficient=2.0,
        maximum_interval=RETRY_AT_LEAST_EVERY,
        maximum_attempts=max_attempts,  # 0: until it succeeds (or the bug is fixed)
        non_retryable_error_types=NON_RETRYABLE_ERRORS,
    )


# Two activities must never give up, however long the bank is broken: the refund
# (giving up would lose the withdrawn money) and settling a failed step (until the
# bank has said whether the step moved money, no decision is safe). Both activities
# also report every error as retryable, for the same reason.
RETRY_FOREVER = RetryPolicy(
    initial_interval=FIRST_RETRY_AFTER,
    backoff_coefficient=2.0,
    maximum_interval=RETRY_AT_LEAST_EVERY,
    maximum_attempts=0,
)


@workflow.defn(name=MONEY_TRANSFER_WORKFLOW)
class MoneyTransfer:
    @workflow.run
    async def run(self, payment_details: Any = None) -> str:
        """Withdraw, deposit, and refund if the deposit fails for good.

        The input is the tutorial's PaymentDetails, taken as plain decoded JSON
        (``Any``): were it typed, the SDK would decode it before this code runs,
        and an input it cannot decode (a string amount, a missing field, null)
        would fail the workflow task on every retry, leaving the workflow Running
        for ever. Checked here, such an input fails the workflow at once, saying
        what is wrong, before any money moves.
        """
        try:
            details = parse_payment(payment_details)
        except InvalidPayment as err:
            raise ApplicationError(
                f"Invalid transfer: {err} Nothing was moved.",
                type="InvalidTransfer",
                non_retryable=True,
            ) from None
        retry_policy = step_retry_policy(details.max_attempts)

        try:
            withdrawn = await workflow.execute_activity_method(
                BankingActivities.withdraw,
                details,
                start_to_close_timeout=BANK_CALL_TIMEOUT,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=retry_policy,
            )
        except ActivityError as withdraw_err:
            settled = await self._settle(details, "withdraw")
            if settled is None:
                raise _failed(
                    f"Withdrawal from {details.source_account}", withdraw_err, "Nothing was moved."
                ) from withdraw_err
            workflow.logger.info(
                f"The bank did {settled.idempotency_key} after all: its answer was lost."
            )
            withdrawn = settled

        try:
            deposited = await workflow.execute_activity_method(
                BankingActivities.deposit,
                details,
                start_to_close_timeout=BANK_CALL_TIMEOUT,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=retry_policy,
            )
        except ActivityError as deposit_err:
            settled = await self._settle(details, "deposit")
            if settled is None:
                await self._refund(details, deposit_err)
                raise _failed(
                    f"Deposit into {details.target_account}",
                    deposit_err,
                    f"${details.amount} was refunded to {details.source_account}.",
                ) from deposit_err
            workflow.logger.info(
                f"The bank did {settled.idempotency_key} after all: its answer was lost."
            )
            deposited = settled

        # A string, as the tutorial's MoneyTransfer returns: its starter prints it. The
        # steps' details stay in the history, as the results of withdraw and deposit.
        return transfer_summary(details, withdrawn, deposited)

    async def _settle(self, details: PaymentDetails, step: str) -> StepResult | None:
        """After a step failed: did it move money after all? None means never."""
        return await workflow.execute_activity_method(
            BankingActivities.settle,
            idempotency_key(details.reference_id, step),
            start_to_close_timeout=BANK_CALL_TIMEOUT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=RETRY_FOREVER,
        )

    async def _refund(self, details: PaymentDetails, deposit_err: ActivityError) -> StepResult:
        try:
            return await workflow.execute_activity_method(
                BankingActivities.refund,
                details,
                start_to_close_timeout=BANK_CALL_TIMEOUT,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=RETRY_FOREVER,
            )
        except ActivityError as refund_err:
            # Only reachable if the refund is cancelled or its policy is changed.
            raise ApplicationError(
                _story(
                    f"Deposit into {details.target_account}",
                    deposit_err,
                    _story(
                        f"The refund to {details.source_account}",
                        refund_err,
                        f"${details.amount} is in limbo: withdrawn from "
                        f"{details.source_account} but in neither account.",
                    ),
                ),
                type="RefundFailed",
                non_retryable=True,
            ) from refund_err


def _failed(step: str, err: ActivityError, outcome: str) -> ApplicationError:
    return ApplicationError(_story(step, err, outcome), type="TransferFailed", non_retryable=True)


# What the bank's refusals mean, in the words a person would use.
_REFUSALS = {
    "InvalidAccountError": "unknown account",
    "InsufficientFundsError": "insufficient funds",
    "InvalidRequestError": "request refused",
}


def _story(step: str, err: ActivityError, outcome: str) -> str:
    """E.g. "Deposit into 43-812 failed: This deposit has failed. $250 was refunded to 85-150."

    The step, why it failed (the activity's own error), then what that means for the money.
    """
    cause = err.cause
    message = cause.message if isinstance(cause, FailureError) else str(err)
    message = message.strip() or "unknown error"
    if not message.endswith((".", "!", "?")):
        message += "."
    refusal = _REFUSALS.get(cause.type or "") if isinstance(cause, ApplicationError) else None
    label = f" ({refusal})" if refusal else ""
    if outcome in message:  # the bank may already have said "Nothing was moved."
        return f"{step} failed{label}: {message}"
    return f"{step} failed{label}: {message} {outcome}"
