"""The soak's plan, a pure function of the seed and the options: which faults strike when
(each one a lever of the catalogue, crashlab/levers.py), which transfers start when, and what
each transfer must end as.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bank.models import Fault, FaultMode
from crashlab.constants import SPARE_ACCOUNTS
from crashlab.invariants import (
    COMPENSATED,
    COMPLETED,
    REJECTED,
)
from crashlab.levers import CATALOGUE, FAULT_OPERATIONS, BankFault, Lever
from worker.shared import (
    PaymentDetails,
)


class SoakError(Exception):
    """The soak cannot run; the message says why and what to do."""


# --- what can break ----------------------------------------------------------------------

# Each kind of fault the soak schedules pulls a lever of the catalogue (crashlab/levers.py:
# its soak_kinds). A kind missing there cannot be scheduled: parse_kinds and
# FaultSpec.lever refuse it rather than guess.
LEVER_OF_KIND: dict[str, type[Lever]] = {
    kind: lever for lever in CATALOGUE for kind in lever.soak_kinds
}
KIND_HELP = {kind: text for lever in CATALOGUE for kind, text in lever.soak_kinds.items()}
FAULT_KINDS = tuple(LEVER_OF_KIND)
# The bank's switch: the mode each bank-* kind sets.
BANK_MODE_OF_KIND = BankFault.SOAK_MODES
# Levers and bank modes the schedule leaves out on purpose, and why
# (tests/unit/test_levers.py holds every other one to appear above).
LEFT_OUT: dict[type[Lever] | FaultMode, str] = {
    lever: lever.soak_left_out for lever in CATALOGUE if lever.soak_left_out
}
for mode, why in BankFault.MODES_LEFT_OUT.items():
    LEFT_OUT[mode] = why
BANK_OPS = FAULT_OPERATIONS
RATES = (0.3, 0.5, 1.0)

# --- the transfers -----------------------------------------------------------------------

ACCOUNTS = SPARE_ACCOUNTS
UNKNOWN_TARGET = "99-999"  # the deposit is refused for good: the refund runs
UNKNOWN_SOURCE = "99-998"  # the withdraw is refused: nothing moves
MAX_AMOUNT = 25
NORMAL, UNKNOWN_TARGET_KIND, UNKNOWN_SOURCE_KIND, INSUFFICIENT = (
    "normal",
    "unknown target",
    "unknown source",
    "insufficient funds",
)
FAILING_KINDS = (UNKNOWN_TARGET_KIND, UNKNOWN_SOURCE_KIND, INSUFFICIENT)
EXPECTED: dict[str, tuple[str, ...]] = {
    NORMAL: (COMPLETED,),
    UNKNOWN_TARGET_KIND: (COMPENSATED,),
    UNKNOWN_SOURCE_KIND: (REJECTED,),
    INSUFFICIENT: (REJECTED,),
}
# A normal transfer tried only once may honestly end any of these ways; never broken.
ONE_ATTEMPT_EXPECTED = (COMPLETED, COMPENSATED, REJECTED)
# The workflow's own status for each ledger outcome.
WORKFLOW_STATUS = {COMPLETED: "completed", COMPENSATED: "failed", REJECTED: "failed"}


# --- the plan: pure functions of the seed ------------------------------------------------


@dataclass(frozen=True)
class FaultSpec:
    """One planned fault."""

    number: int  # 1, 2, ...
    at: float  # planned start, seconds from the soak's start (restarts push it later)
    kind: str
    target: str  # worker-2, bank, temporal; withdraw, deposit or all for the bank's switch
    hold: float  # seconds the fault lasts before it is undone
    rate: float = 1.0
    latency_ms: int = 0  # bank-latency, link-delay
    jitter_ms: int = 0
    loss_pct: float = 0.0  # link-loss

    def describe(self) -> str:
        return LEVER_OF_KIND[self.kind].soak_describe(self)

    @property
    def service(self) -> str | None:
        """The container service a fault stops or cuts off, to wait for its health after
        the undo (None: the bank's switch and the link faults leave every container up)."""
        return LEVER_OF_KIND[self.kind].soak_service(self)

    def fault(self) -> Fault:
        """The bank's fault switch setting for a bank-* kind."""
        lever = self.lever()
        assert isinstance(lever, BankFault), f"{self.kind} sets no bank fault"
        return lever.fault

    def lever(self, which: str = "all") -> Lever:
        """The catalogue's lever for this fault; ``which`` picks the container."""
        return LEVER_OF_KIND[self.kind].soak_lever(self, which)


@dataclass(frozen=True)
class Schedule:
    faults: tuple[FaultSpec, ...]
    length: float  # planned seconds: the last fault's end plus one more gap


def parse_kinds(text: str) -> tuple[str, ...]:
    """--faults: "all", "none", or a comma list of FAULT_KINDS (in FAULT_KINDS order)."""
    text = text.strip()
    if text == "all":
        return FAULT_KINDS
    if text in ("none", ""):
        return ()
    asked = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in asked if k not in FAULT_KINDS]
    if unknown:
        raise ValueError(
            f"unknown fault kind {', '.join(unknown)}; the kinds are: {', '.join(FAULT_KINDS)} "
            "(or all, none)"
        )
    return tuple(k for k in FAULT_KINDS if k in asked)


def make_schedule(
    seed: int,
    kinds: Sequence[str],
    count: int,
    *,
    workers: int,
    hold: tuple[float, float] = (2.0, 6.0),
    gap: tuple[float, float] = (3.0, 8.0),
) -> Schedule:
    """``count`` faults of the given kinds, every kind once before any repeats.

    Only the seed and these arguments decide it: the same call gives the same schedule.
    """
    rng = random.Random(f"soak-faults:{seed}")
    kinds = [k for k in FAULT_KINDS if k in kinds]
    if not kinds or count <= 0:
        return Schedule((), 0.0)
    order = rng.sample(kinds, len(kinds))[:count]
    order += [rng.choice(kinds) for _ in range(count - len(order))]
    faults = []
    t = 0.0
    for number, kind in enumerate(order, start=1):
        t = round(t + rng.uniform(*gap), 1)
        hold_s = round(rng.uniform(*hold), 1)
        faults.append(FaultSpec(number, t, kind, hold=hold_s, **_target(rng, kind, workers)))
        t = round(t + hold_s, 1)
    return Schedule(tuple(faults), round(t + rng.uniform(*gap), 1))


@dataclass(frozen=True)
class Draws:
    """The random draws for one fault; a lever's soak_settings picks what its kind needs.
    The same draws whatever the kind, so one kind's settings never shift the next fault's."""

    worker: str  # worker-1 ...
    service: str  # temporal, bank or a worker
    op: str  # withdraw, deposit or all
    rate: float
    latency: int  # ms, for the bank's switch
    jitter: int
    server: str  # temporal or bank: a link's far end
    delay: int  # ms, for a link
    loss: float  # %, for a link

    @classmethod
    def draw(cls, rng: random.Random, workers: int) -> Draws:
        worker = f"worker-{rng.randint(1, max(1, workers))}"
        service = rng.choice(("temporal", "bank", worker))
        op = rng.choice(BANK_OPS)
        rate = rng.choice(RATES)
        latency = rng.randrange(500, 3001, 250)
        jitter = rng.randrange(0, latency // 2 + 1, 50)
        server = rng.choice(("temporal", "bank"))
        delay = rng.randrange(100, 401, 50)
        loss = rng.choice((5.0, 10.0, 20.0, 30.0))
        return cls(worker, service, op, rate, latency, jitter, server, delay, loss)


def _target(rng: random.Random, kind: str, workers: int) -> dict[str, Any]:
    return LEVER_OF_KIND[kind].soak_settings(kind, Draws.draw(rng, workers))


# The share of transfers started in bursts, one burst as each fault strikes; the others
# trickle in evenly over the schedule.
BURST_SHARE = 0.6


@dataclass(frozen=True)
class Releases:
    """When the transfers start."""

    bursts: tuple[int, ...]  # per fault: started just before its lever is pulled
    probes: int  # kept back, one per fault: started when it is undone if none is in flight
    trickle: tuple[float, ...]  # the others: planned start times, earliest first


def plan_releases(seed: int, count: int, schedule: Schedule, concurrency: int) -> Releases:
    """Most transfers start in a burst as a fault strikes (at least one each, never more
    than the concurrency), so each fault lands on transfers in flight, some withdrawn and
    not yet deposited. One per fault is kept back as a probe: if nothing is in flight
    when the fault is undone, it starts then, so the recovery is measured on real work.
    The rest are spread evenly over the schedule's planned time."""
    rng = random.Random(f"soak-releases:{seed}")
    faults = len(schedule.faults)
    if not faults:
        return Releases((), 0, (0.0,) * count)
    probes = min(faults, count // 4)
    in_bursts = min(round(count * BURST_SHARE), count - probes)
    sizes = [1 if in_bursts >= faults else 0 for _ in range(faults)]
    for _ in range(in_bursts - sum(sizes)):
        sizes[rng.randrange(faults)] += 1
    bursts = tuple(min(size, concurrency) for size in sizes)
    rest = count - probes - sum(bursts)
    trickle = tuple(round(k * schedule.length / rest, 2) for k in range(rest))
    return Releases(bursts, probes, trickle)


@dataclass(frozen=True)
class TransferSpec:
    number: int
    reference_id: str
    kind: str  # normal, unknown target, unknown source, insufficient funds
    source: str
    target: str
    amount: int
    max_attempts: int  # 0: until it works
    expected: tuple[str, ...]  # the ledger outcomes it may honestly end with

    def details(self) -> PaymentDetails:
        return PaymentDetails(
            self.source, self.target, self.amount, self.reference_id, self.max_attempts
        )


def plan_transfers(
    seed: int,
    count: int,
    balances: dict[str, int],
    *,
    run_id: str,
    failing: float = 0.1,
    one_attempt: float = 0.2,
) -> list[TransferSpec]:
    """The transfers, from the seed and the balances they start from.

    Normal transfers move $1 to $25 (less when there are many) between the 10-00x
    accounts. No account ever pays out more than it holds at the start (refunds and
    deposits only add), so however the transfers interleave, none can meet insufficient
    funds unless it is meant to.
    ``failing`` is the share that must fail, spread over the three failing kinds;
    ``one_attempt`` the share of normal transfers tried only once (max_attempts=1).
    """
    rng = random.Random(f"soak-transfers:{seed}")
    accounts = [a for a in ACCOUNTS if a in balances]
    if len(accounts) < 2:
        raise SoakError(
            f"The bank has {len(accounts)} of the accounts {ACCOUNTS[0]} to {ACCOUNTS[-1]}; "
            "the soak needs at least two."
        )
    budget = {a: max(0, balances[a]) for a in accounts}
    # $1 to $25, smaller when many transfers share the money (on average 80% of it moves).
    top = max(1, min(MAX_AMOUNT, int(1.6 * sum(budget.values()) / max(1, count))))
    # More than the whole bank holds, so more than any balance can ever be.
    too_much = sum(max(0, b) for b in balances.values()) + 1
    failing_count = min(count, round(count * failing))
    slots = sorted(rng.sample(range(count), failing_count))
    kinds = [FAILING_KINDS[i % len(FAILING_KINDS)] for i in range(failing_count)]
    rng.shuffle(kinds)
    kind_of = dict(zip(slots, kinds, strict=True))
    plan = []
    for i in range(count):
        kind = kind_of.get(i, NORMAL)
        amount = rng.randint(1, top)
        once = rng.random() < one_attempt
        either = rng.choice((0, 1))
        expected = EXPECTED[kind]
        max_attempts = 0
        if kind in (NORMAL, UNKNOWN_TARGET_KIND):
            funded = [a for a in accounts if budget[a] >= amount]
            if not funded:
                raise SoakError(
                    f"The accounts {ACCOUNTS[0]} to {ACCOUNTS[-1]} hold too little for {count} "
                    "transfers; `make clean up` starts the bank afresh (or use --own-lab)."
                )
            source = rng.choice(funded)
            budget[source] -= amount
            if kind == NORMAL:
                target = rng.choice([a for a in accounts if a != source])
                if once:
                    max_attempts, expected = 1, ONE_ATTEMPT_EXPECTED
            else:
                target = UNKNOWN_TARGET
        elif kind == UNKNOWN_SOURCE_KIND:
            source, target = UNKNOWN_SOURCE, rng.choice(accounts)
            # Refused whatever happens, so one attempt is as safe as many.
            max_attempts = either
        else:
            source = rng.choice(accounts)
            target = rng.choice([a for a in accounts if a != source])
            amount, max_attempts = too_much, either
        plan.append(
            TransferSpec(
                number=i + 1,
                reference_id=f"soak-{run_id}-{i + 1:04d}",
                kind=kind,
                source=source,
                target=target,
                amount=amount,
                max_attempts=max_attempts,
                expected=expected,
            )
        )
    return plan


@dataclass(frozen=True)
class SoakConfig:
    transfers: int = 300
    concurrency: int = 20
    seed: int = 0
    workers: int = 2
    kinds: tuple[str, ...] = FAULT_KINDS
    fault_count: int | None = None  # None: max(len(kinds), transfers // 10)
    hold: tuple[float, float] = (2.0, 6.0)
    gap: tuple[float, float] = (3.0, 8.0)
    failing: float = 0.1
    one_attempt: float = 0.2
    duration: float = 3600.0  # cap on the faults phase, seconds
    settle: float = 180.0  # after the faults, how long the transfers may take to end
    read_every: float = 0.5
    ledger_every: float = 5.0
    progress_every: float = 5.0

    @property
    def faults(self) -> int:
        if not self.kinds:
            return 0
        if self.fault_count is not None:
            return self.fault_count
        return max(len(self.kinds), self.transfers // 10)

    def schedule(self) -> Schedule:
        return make_schedule(
            self.seed, self.kinds, self.faults, workers=self.workers, hold=self.hold, gap=self.gap
        )
