"""The workflows' contract, shared by the worker, the starter and the tests.

The names and the input shape match Temporal's money-transfer tutorial, so the
tutorial's own starter can drive this lab's worker and the other way round.
"""

from dataclasses import dataclass

MONEY_TRANSFER_TASK_QUEUE_NAME = "TRANSFER_MONEY_TASK_QUEUE"
MONEY_TRANSFER_WORKFLOW = "MoneyTransfer"

PRINT_NUMBERS_TASK_QUEUE_NAME = "print-numbers-task-queue"
PRINT_NUMBERS_WORKFLOW = "PrintNumbersWorkflow"
PRINT_NUMBERS_WORKFLOW_ID = "print-numbers-workflow"


@dataclass
class PaymentDetails:
    source_account: str
    target_account: str
    amount: int
    reference_id: str
    # Not in the tutorial (a default keeps its starter compatible): how many
    # times withdraw and deposit are tried. 0 means until they succeed.
    max_attempts: int = 0


@dataclass
class StepResult:
    """What the bank confirmed for one step of a transfer."""

    transaction_seq: int  # the bank ledger's row for this movement
    account_id: str
    amount: int
    idempotency_key: str


@dataclass
class TransferResult:
    reference_id: str
    withdraw: StepResult
    deposit: StepResult


def idempotency_key(reference_id: str, step: str) -> str:
    """The bank key for one step of one transfer: a retried step reuses it."""
    return f"{reference_id}-{step}"
