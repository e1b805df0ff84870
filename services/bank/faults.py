"""The bank's flakiness switch: which fault, if any, each money-moving call suffers. No HTTP.

Faults live in memory only, on purpose: restarting the bank clears every fault,
so a restart is the "everything back to normal" button as well as a crash test.
Only withdraw and deposit are ever faulted; reads stay truthful so a learner can
always see what really happened.

``decide`` takes its randomness from an injectable ``random.Random``, so a test
with a seeded generator knows exactly which calls a ``rate`` will hit and what
delay a ``latency`` fault picks.
"""

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TypeGuard

from bank.errors import ErrorCode
from bank.models import Fault, FaultMode, FaultState, Operation

# Longer than any lab timeout; for "never answers" use mode hang instead.
MAX_LATENCY_MS = 600_000


class FaultTarget(StrEnum):
    """What PUT/DELETE /faults/{target} can name: one operation or both."""

    WITHDRAW = "withdraw"
    DEPOSIT = "deposit"
    ALL = "all"


def operations(target: FaultTarget | str) -> tuple[Operation, ...]:
    """The operations a target names: "all" is both withdraw and deposit."""
    target = FaultTarget(target)
    if target is FaultTarget.ALL:
        return (Operation.WITHDRAW, Operation.DEPOSIT)
    return (Operation(target.value),)


class FaultSpecError(ValueError):
    """A fault the switch cannot hold; the message says how to fix it."""

    code = ErrorCode.INVALID_REQUEST

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Action(StrEnum):
    """What to do with one withdraw or deposit call."""

    NONE = "none"  # work normally
    ERROR = "error"  # answer 503 injected_fault, touch nothing
    DELAY = "delay"  # wait Decision.delay_s, then work normally
    HANG = "hang"  # never answer, touch nothing
    DROP_RESPONSE = "drop_response"  # do the work, then never answer
    DOWN = "down"  # answer 503 bank_down, touch nothing


@dataclass(frozen=True)
class Decision:
    action: Action
    delay_s: float = 0.0


PROCEED = Decision(Action.NONE)

_ACTION = {
    FaultMode.ERROR: Action.ERROR,
    FaultMode.LATENCY: Action.DELAY,
    FaultMode.HANG: Action.HANG,
    FaultMode.DROP_RESPONSE: Action.DROP_RESPONSE,
    FaultMode.DOWN: Action.DOWN,
}


def _is_int(value: object) -> TypeGuard[int]:
    # bool is a subclass of int, but `true` milliseconds is a mistake.
    return isinstance(value, int) and not isinstance(value, bool)


def validate(fault: Fault) -> Fault:
    """Return ``fault`` with its mode as a FaultMode, or raise FaultSpecError."""
    try:
        mode = FaultMode(fault.mode)
    except ValueError:
        modes = ", ".join(m.value for m in FaultMode)
        raise FaultSpecError(f"mode must be one of {modes}; got {fault.mode!r}") from None
    rate: object = fault.rate  # typed float, but the caller may be a test or a REPL
    if (
        isinstance(rate, bool)
        or not isinstance(rate, int | float)
        or math.isnan(rate)
        or not 0 < rate <= 1
    ):
        raise FaultSpecError(
            f"rate is the chance that the fault hits a call: a number in (0, 1], got {rate!r}. "
            "Use 1 for every call, 0.5 for about half of them; to stop a fault, DELETE it."
        )
    values: tuple[tuple[str, object], ...] = (
        ("latency_ms", fault.latency_ms),
        ("jitter_ms", fault.jitter_ms),
    )
    for name, value in values:
        if not _is_int(value) or not 0 <= value <= MAX_LATENCY_MS:
            raise FaultSpecError(
                f"{name} must be a whole number of milliseconds from 0 to {MAX_LATENCY_MS}, "
                f"got {value!r}"
            )
    if fault.jitter_ms > fault.latency_ms:
        raise FaultSpecError(
            f"jitter_ms ({fault.jitter_ms}) cannot be more than latency_ms "
            f"({fault.latency_ms}): a delay of latency_ms +/- jitter_ms must not go below 0"
        )
    if mode is FaultMode.LATENCY and fault.latency_ms <= 0:
        raise FaultSpecError(
            'mode latency needs latency_ms > 0, e.g. {"mode": "latency", "latency_ms": 2000}'
        )
    return replace(fault, mode=mode, rate=float(rate))


def _copy(fault: Fault | None) -> Fault | None:
    # Fault is a mutable dataclass: hand out copies so no caller can edit the switch.
    return None if fault is None else replace(fault)


class FaultSwitch:
    """At most one fault per operation, in memory. Used from the event loop only."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng if rng is not None else random.Random()
        self._state = FaultState()

    def state(self) -> FaultState:
        """A copy: changing it does not change the switch."""
        return FaultState(withdraw=_copy(self._state.withdraw), deposit=_copy(self._state.deposit))

    def set(self, operations: Iterable[Operation | str], fault: Fault) -> FaultState:
        """Put ``fault`` on each operation, replacing what was there."""
        fault = validate(fault)
        for operation in operations:
            setattr(self._state, Operation(operation).value, replace(fault))
        return self.state()

    def clear(self, operation: Operation | str | None = None) -> FaultState:
        """Remove the fault on ``operation``, or every fault when it is None."""
        if operation is None:
            self._state = FaultState()
        else:
            setattr(self._state, Operation(operation).value, None)
        return self.state()

    def decide(self, operation: Operation | str) -> Decision:
        """What to do with one call of ``operation``: the fault fires with probability rate."""
        fault: Fault | None = getattr(self._state, Operation(operation).value)
        if fault is None:
            return PROCEED
        # random() is in [0, 1), so rate 1 always fires.
        if self._rng.random() >= fault.rate:
            return PROCEED
        action = _ACTION[fault.mode]
        if action is Action.DELAY:
            low = fault.latency_ms - fault.jitter_ms
            high = fault.latency_ms + fault.jitter_ms
            return Decision(action, delay_s=self._rng.uniform(low, high) / 1000)
        return Decision(action)
