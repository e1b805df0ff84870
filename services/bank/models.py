"""The bank's wire shapes, as plain dataclasses shared by server and client.

FastAPI uses them as response models (so they appear in /openapi.json) and the
client returns them, so a field added here reaches both at once.
"""

from dataclasses import dataclass
from enum import StrEnum

# Big enough for any lab scenario, small enough that no balance can overflow
# SQLite's 64-bit integers (a fuzzer will try).
MAX_AMOUNT = 1_000_000_000_000


def amount_problem(amount: object) -> str | None:
    """What is wrong with ``amount`` as a number of dollars, or None when it is fine.

    The one rule for amounts: the bank's API and ledger, the workflow and the
    starter all ask here.
    """
    # bool is a subclass of int, but `true` dollars is a mistake, not 1 dollar; 250.0
    # and "250" are mistakes too, to report rather than to coerce.
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= MAX_AMOUNT:
        return (
            "amount must be a whole number of dollars greater than 0 "
            f"(at most {MAX_AMOUNT}), got {amount!r}"
        )
    return None


class Operation(StrEnum):
    """A money-moving operation: the unit a fault can target."""

    WITHDRAW = "withdraw"
    DEPOSIT = "deposit"


class FaultMode(StrEnum):
    """What the flakiness switch does to an operation (Toxiproxy's vocabulary)."""

    ERROR = "error"  # refuse before touching the ledger: 503 injected_fault
    LATENCY = "latency"  # wait latency_ms +/- jitter_ms, then work normally
    HANG = "hang"  # never answer, and never touch the ledger
    DROP_RESPONSE = "drop_response"  # apply and commit the movement, then never answer
    DOWN = "down"  # refuse every call at once: 503 bank_down


@dataclass
class Account:
    id: str
    balance: int


@dataclass
class Movement:
    """One applied change to one balance: a row of the ledger."""

    seq: int  # position in the ledger, 1, 2, 3...
    idempotency_key: str
    operation: Operation
    account_id: str
    amount: int
    balance_after: int
    created_at: str  # ISO 8601, UTC
    replayed: bool = False  # true when this answers a repeated key: nothing moved


@dataclass
class Settlement:
    """The answer to POST /void: what one idempotency key did, for good."""

    idempotency_key: str
    # The movement the key made (replayed=true), or null: the key is now void and
    # no withdraw or deposit with it will ever move money.
    movement: Movement | None


@dataclass
class Fault:
    mode: FaultMode
    rate: float = 1.0  # probability per call, 0 < rate <= 1
    latency_ms: int = 0
    jitter_ms: int = 0


@dataclass
class FaultState:
    """The switch's whole state: at most one fault per operation."""

    withdraw: Fault | None = None
    deposit: Fault | None = None
