"""The bank's wire shapes, as plain dataclasses shared by server and client.

FastAPI uses them as response models (so they appear in /openapi.json) and the
client returns them, so a field added here reaches both at once.
"""

from dataclasses import dataclass
from enum import StrEnum


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
