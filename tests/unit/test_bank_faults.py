"""The fault switch on its own: what it holds, what it refuses, and what it decides."""

import random
from typing import Any

import pytest

from bank.errors import ErrorCode
from bank.faults import (
    MAX_LATENCY_MS,
    Action,
    Decision,
    FaultSpecError,
    FaultSwitch,
    FaultTarget,
    operations,
)
from bank.models import Fault, FaultMode, FaultState, Operation

W = Operation.WITHDRAW
D = Operation.DEPOSIT


def test_a_new_switch_holds_no_faults_and_lets_everything_through() -> None:
    switch = FaultSwitch()
    assert switch.state() == FaultState(withdraw=None, deposit=None)
    assert switch.decide(W) == Decision(Action.NONE)
    assert switch.decide(D) == Decision(Action.NONE)


def test_all_means_both_operations() -> None:
    assert operations(FaultTarget.ALL) == (W, D)
    assert operations("withdraw") == (W,)
    assert operations("deposit") == (D,)
    with pytest.raises(ValueError):
        operations("everything")


def test_set_replaces_and_clear_removes() -> None:
    switch = FaultSwitch()
    hang = Fault(FaultMode.HANG)
    error = Fault(FaultMode.ERROR, rate=0.5)

    assert switch.set(operations("all"), hang) == FaultState(withdraw=hang, deposit=hang)
    assert switch.set([W], error) == FaultState(withdraw=error, deposit=hang)
    assert switch.clear(D) == FaultState(withdraw=error, deposit=None)
    switch.set([D], hang)
    assert switch.clear() == FaultState()
    assert switch.state() == FaultState()


def test_state_is_a_copy() -> None:
    switch = FaultSwitch()
    fault = Fault(FaultMode.ERROR)
    switch.set([W], fault)

    fault.rate = 0.1  # the caller's object
    state = switch.state()
    assert state.withdraw is not None
    state.withdraw.mode = FaultMode.DOWN  # the copy it was handed
    state.deposit = Fault(FaultMode.HANG)

    assert switch.state() == FaultState(withdraw=Fault(FaultMode.ERROR, rate=1.0))


@pytest.mark.parametrize(
    ("mode", "action"),
    [
        (FaultMode.ERROR, Action.ERROR),
        (FaultMode.HANG, Action.HANG),
        (FaultMode.DROP_RESPONSE, Action.DROP_RESPONSE),
        (FaultMode.DOWN, Action.DOWN),
    ],
)
def test_each_mode_decides_its_action_and_only_for_its_operation(
    mode: FaultMode, action: Action
) -> None:
    switch = FaultSwitch(random.Random(1))
    switch.set([D], Fault(mode))

    assert switch.decide(D) == Decision(action)
    assert switch.decide(W) == Decision(Action.NONE)


def test_latency_is_uniform_within_jitter_and_reproducible() -> None:
    switch = FaultSwitch(random.Random(42))
    switch.set([W], Fault(FaultMode.LATENCY, latency_ms=1000, jitter_ms=250))
    replay = random.Random(42)

    delays = []
    for _ in range(200):
        decision = switch.decide(W)
        replay.random()  # the rate check
        expected = replay.uniform(750, 1250) / 1000
        assert decision == Decision(Action.DELAY, delay_s=expected)
        delays.append(decision.delay_s)

    assert min(delays) >= 0.75 and max(delays) <= 1.25
    # Spread over the range, not stuck at one value.
    assert min(delays) < 0.8 and max(delays) > 1.2


def test_latency_without_jitter_is_exact() -> None:
    switch = FaultSwitch(random.Random(3))
    switch.set([W], Fault(FaultMode.LATENCY, latency_ms=300))
    assert {switch.decide(W).delay_s for _ in range(5)} == {0.3}


def test_rate_fires_on_the_calls_the_rng_picks() -> None:
    switch = FaultSwitch(random.Random(99))
    switch.set([W], Fault(FaultMode.ERROR, rate=0.3))
    replay = random.Random(99)

    actions = [switch.decide(W).action for _ in range(1000)]

    assert actions == [Action.ERROR if replay.random() < 0.3 else Action.NONE for _ in range(1000)]
    assert 250 < actions.count(Action.ERROR) < 350


def test_rate_one_always_fires() -> None:
    switch = FaultSwitch(random.Random(5))
    switch.set([W], Fault(FaultMode.ERROR, rate=1))
    assert {switch.decide(W).action for _ in range(500)} == {Action.ERROR}


@pytest.mark.parametrize(
    ("fault", "says"),
    [
        (Fault(FaultMode.ERROR, rate=0), "rate"),
        (Fault(FaultMode.ERROR, rate=-0.5), "rate"),
        (Fault(FaultMode.ERROR, rate=1.01), "rate"),
        (Fault(FaultMode.ERROR, rate=float("nan")), "rate"),
        (Fault(FaultMode.ERROR, rate=True), "rate"),
        (Fault(FaultMode.ERROR, rate="0.5"), "rate"),  # type: ignore[arg-type]
        (Fault(FaultMode.LATENCY), "latency_ms > 0"),
        (Fault(FaultMode.LATENCY, latency_ms=-1), "latency_ms"),
        (Fault(FaultMode.LATENCY, latency_ms=MAX_LATENCY_MS + 1), "latency_ms"),
        (Fault(FaultMode.LATENCY, latency_ms=10.5), "latency_ms"),  # type: ignore[arg-type]
        (Fault(FaultMode.LATENCY, latency_ms=True), "latency_ms"),
        (Fault(FaultMode.LATENCY, latency_ms=100, jitter_ms=-1), "jitter_ms"),
        (Fault(FaultMode.LATENCY, latency_ms=100, jitter_ms=101), "jitter_ms (101)"),
        (Fault(FaultMode.HANG, latency_ms=100, jitter_ms=101), "jitter_ms (101)"),
        (Fault("explode"), "mode must be one of error, latency"),  # type: ignore[arg-type]
    ],
)
def test_invalid_faults_are_refused_and_change_nothing(fault: Fault, says: str) -> None:
    switch = FaultSwitch()
    switch.set([W], Fault(FaultMode.HANG))

    with pytest.raises(FaultSpecError) as caught:
        switch.set([W, D], fault)

    assert caught.value.code is ErrorCode.INVALID_REQUEST
    assert says in caught.value.message
    assert switch.state() == FaultState(withdraw=Fault(FaultMode.HANG))


@pytest.mark.parametrize(
    "fault",
    [
        Fault(FaultMode.ERROR, rate=0.001),
        Fault(FaultMode.DOWN, rate=1),
        Fault(FaultMode.LATENCY, latency_ms=1, jitter_ms=1),
        Fault(FaultMode.LATENCY, latency_ms=MAX_LATENCY_MS, jitter_ms=MAX_LATENCY_MS),
    ],
)
def test_edge_valid_faults_are_accepted(fault: Fault) -> None:
    assert FaultSwitch().set([W], fault).withdraw == fault


def test_a_mode_given_as_text_is_stored_as_the_enum() -> None:
    fault: Any = Fault("drop_response")  # type: ignore[arg-type]
    state = FaultSwitch().set([W], fault)
    assert state.withdraw is not None
    assert state.withdraw.mode is FaultMode.DROP_RESPONSE
