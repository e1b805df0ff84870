"""The workflows' contract, shared by the worker, the starter and the tests.

The names, the input shape and the result type match Temporal's money-transfer
tutorial, so the tutorial's own starter can drive this lab's worker and the
other way round. Anyone with a Temporal client can start MoneyTransfer, so the
rules for its input are written here once (`parse_payment`) and the workflow,
the starter and the tests all use them.
"""

import hashlib
import re
from dataclasses import dataclass, fields
from typing import Any

from bank.models import amount_problem

MONEY_TRANSFER_TASK_QUEUE_NAME = "TRANSFER_MONEY_TASK_QUEUE"
MONEY_TRANSFER_WORKFLOW = "MoneyTransfer"

PRINT_NUMBERS_TASK_QUEUE_NAME = "print-numbers-task-queue"
PRINT_NUMBERS_WORKFLOW = "PrintNumbersWorkflow"
PRINT_NUMBERS_WORKFLOW_ID = "print-numbers-workflow"

# Retry policies count attempts in 32 bits; a few hundred attempts of a step are
# already minutes of retrying. 0 means "until it succeeds".
MAX_ATTEMPTS = 1000


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


class InvalidPayment(ValueError):
    """A MoneyTransfer input nothing can act on; the message names the field and the rule."""


_FIELDS = [f.name for f in fields(PaymentDetails)]
_OPTIONAL = {"max_attempts"}


def parse_payment(raw: Any) -> PaymentDetails:
    """PaymentDetails from a workflow input as any client may send it (decoded JSON).

    Raises InvalidPayment for anything a transfer cannot act on: not an object,
    a missing or unknown field, an amount that is not a whole number of dollars,
    identical accounts, an attempt count out of range.
    """
    if isinstance(raw, PaymentDetails):
        raw = {name: getattr(raw, name) for name in _FIELDS}
    if not isinstance(raw, dict):
        raise InvalidPayment(
            f"The input must be one object with the fields {_field_list()}, got {_kind(raw)}."
        )
    unknown = sorted(str(name) for name in raw if name not in _FIELDS)
    if unknown:
        raise InvalidPayment(f"Unknown field {unknown[0]!r}: the fields are {_field_list()}.")
    missing = [name for name in _FIELDS if name not in raw and name not in _OPTIONAL]
    if missing:
        raise InvalidPayment(f"{missing[0]} is missing: the fields are {_field_list()}.")
    for name in ("source_account", "target_account", "reference_id"):
        value = raw[name]
        if not isinstance(value, str) or not value.strip():
            raise InvalidPayment(f"{name} must be a non-empty string, got {value!r}.")
    problem = amount_problem(raw["amount"])
    if problem is not None:
        raise InvalidPayment(f"{problem}.")
    attempts = raw.get("max_attempts", 0)
    if (
        isinstance(attempts, bool)
        or not isinstance(attempts, int)
        or not 0 <= attempts <= MAX_ATTEMPTS
    ):
        raise InvalidPayment(
            f"max_attempts must be a whole number from 0 (until it succeeds) to "
            f"{MAX_ATTEMPTS}, got {attempts!r}."
        )
    if raw["source_account"] == raw["target_account"]:
        raise InvalidPayment(
            f"source_account and target_account are the same account "
            f"({raw['source_account']}): nothing would move."
        )
    return PaymentDetails(**{name: raw[name] for name in _FIELDS if name in raw})


def _field_list() -> str:
    required = [name for name in _FIELDS if name not in _OPTIONAL]
    return f"{', '.join(required)} and, optionally, {', '.join(sorted(_OPTIONAL))}"


def _kind(value: Any) -> str:
    if value is None:
        return "null (no input)"
    return {list: "a list", str: "a string", bool: "a boolean"}.get(type(value), repr(value))


def transfer_summary(details: PaymentDetails, withdrawn: StepResult, deposited: StepResult) -> str:
    """The workflow's result: the tutorial's success text, which any client can print."""

    def step(movement: StepResult) -> dict[str, Any]:
        return {
            "amount": movement.amount,
            "receiver": deposited.account_id,
            "reference_id": details.reference_id,
            "sender": withdrawn.account_id,
        }

    return f"Transfer complete.\nWithdraw: {step(withdrawn)}\nDeposit: {step(deposited)}"


# What a reference id may hold and still be read in a key as it is: the bank's
# keys travel in an HTTP header, which takes neither non-ASCII nor line breaks,
# and a whole key must stay short.
_PLAIN_REFERENCE = re.compile(r"[A-Za-z0-9._:@+=-]{1,100}")


def idempotency_key(reference_id: str, step: str) -> str:
    """The bank key for one step of one transfer: a retried step reuses it.

    ``<reference id>-<step>`` for a short, plain reference id (a UUID, "12345");
    any other reference id, of any length and any characters, is represented by
    its SHA-256, so every reference id gives its own safe key.
    """
    if not _PLAIN_REFERENCE.fullmatch(reference_id):
        digest = hashlib.sha256(reference_id.encode("utf-8", "surrogatepass")).hexdigest()
        reference_id = f"sha256.{digest[:40]}"
    return f"{reference_id}-{step}"
