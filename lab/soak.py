"""`python -m lab.soak`: a chaos soak. Hundreds of transfers, a seeded schedule of faults
breaking the lab underneath them, and the bank's invariants checked all along.

While the transfers run (MoneyTransfer, started from this machine, each with its own
reference id), faults follow one another: a worker, the bank or Temporal killed and
started again, a service paused or cut off the network for a few seconds, the bank's
fault switch set to error, latency, drop_response or down. Each fault is undone before
the next one (and in any case when the soak stops, Ctrl+C included). The schedule comes
from ``random.Random(seed)``: the same --seed (and the same options) gives the same
faults at the same planned times, and the same transfers on a freshly seeded bank.

Most transfers start in a burst as a fault strikes, so it lands on transfers in flight;
after each fault is undone the soak waits until transfers end again (that wait is the
recovery time) before the gap to the next one. Some transfers must fail, and fail in a
known way: an unknown target account (the deposit is refused, the refund makes the
source whole: compensated), an unknown source or more money than the whole bank holds
(the withdraw is refused: rejected). Every transfer retries until it works
(max_attempts=0), except a share of normal transfers (--one-attempt, 0.2) and some of
those that must be rejected, which are tried once. A single try is where a dropped
answer, a kill or a partition bites: the step may have been done without anyone hearing
of it. The workflow settles such a step with the bank (POST /void) before it refunds or
gives up, and the soak checks that no money was lost or created on the way.

Meanwhile the balances are read every half second (no balance negative, never more
money than the bank started with) and the ledger is checked every few seconds
(lab.invariants, money in flight allowed). Once the faults stop and every transfer has
ended, the ledger is checked settled, and each transfer's outcome against what it had
to be. The report gives transfers by outcome, faults by kind with the recovery time
(from the fault being undone to the next transfer finishing), and every invariant's
verdict with its first violation; the same goes to a JSON file.

Exit codes: 0 every invariant held and every transfer ended as expected; 1 a violation,
a transfer not ended or not as expected, or a fault that could not be pulled; 2 bad
input or no lab to run on; 130 interrupted (the lab is put back first).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from bank.client import BankClient
from bank.models import Account, Fault, FaultMode, Movement
from lab.constants import DEFAULT_PROJECT, SERVICES, SPARE_ACCOUNTS
from lab.experiments.kit import ledger_after, lever, restore, transfer_id
from lab.invariants import (
    COMPENSATED,
    COMPLETED,
    REJECTED,
    LedgerReport,
    check,
    check_bank,
    split_key,
)
from lab.levers import (
    FAULT_OPERATIONS,
    BankFault,
    Disconnect,
    Kill,
    Lever,
    Pause,
    ServiceLever,
    Stop,
)
from lab.stack import ROOT, Stack, StackError
from lab.status import Unreachable, connect_temporal
from worker.shared import (
    MONEY_TRANSFER_TASK_QUEUE_NAME,
    MONEY_TRANSFER_WORKFLOW,
    PaymentDetails,
)

Say = Callable[[str], None]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
PROG = "python -m lab.soak"
DEFAULT_JSON = ROOT / "build" / "soak.json"
# --own-lab never runs on the learner's project (it deletes its volumes afterwards).
OWN_LAB_PROJECT = "crashlab-soak-lab"

# --- what can break ----------------------------------------------------------------------

# The catalogue's lever (lab/levers.py) each kind pulls. A kind missing here cannot be
# scheduled: parse_kinds and FaultSpec.lever refuse it rather than guess.
LEVER_OF_KIND: dict[str, type[Lever]] = {
    "worker-kill": Kill,
    "bank-kill": Kill,
    "temporal-kill": Kill,
    "pause": Pause,
    "disconnect": Disconnect,
    "bank-error": BankFault,
    "bank-latency": BankFault,
    "bank-drop": BankFault,
    "bank-down": BankFault,
}
BANK_MODE_OF_KIND = {
    "bank-error": FaultMode.ERROR,
    "bank-latency": FaultMode.LATENCY,
    "bank-drop": FaultMode.DROP_RESPONSE,
    "bank-down": FaultMode.DOWN,
}
# Levers and bank modes the schedule leaves out on purpose, and why
# (tests/unit/test_levers.py holds every other one to appear above).
LEFT_OUT: dict[type[Lever] | FaultMode, str] = {
    Stop: "a graceful stop lets in-flight steps finish: the kills are the harder case",
    FaultMode.HANG: (
        "a call that never answers and moves nothing is bank-latency past the timeout; "
        "bank-drop is the harder no-answer case (the money moved)"
    ),
}
FAULT_KINDS = tuple(LEVER_OF_KIND)
KIND_HELP = {
    "worker-kill": "SIGKILL one worker container, start it again after the hold",
    "bank-kill": "SIGKILL the bank, start it again after the hold",
    "temporal-kill": "SIGKILL the Temporal server, start it again after the hold",
    "pause": "docker pause Temporal, the bank or one worker for the hold",
    "disconnect": "cut Temporal, the bank or one worker off the network for the hold",
    "bank-error": "the bank's switch: 503 injected_fault on some calls, nothing moves",
    "bank-latency": "the bank's switch: answers 0.5 to 3 s late (with jitter)",
    "bank-drop": "the bank's switch: drop_response, the money moves, the answer is lost",
    "bank-down": "the bank's switch: every withdraw and deposit answers 503 bank_down",
}
BANK_OPS = FAULT_OPERATIONS
RATES = (0.3, 0.5, 1.0)
# After a fault is undone, the next one waits until transfers end again, this long at most.
RECOVERY_WAIT = 90.0

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

# --- the invariants ----------------------------------------------------------------------

NO_NEGATIVE_READ = "no balance is ever negative (every read of the balances)"
CEILING_READ = "the bank never holds more money than it started with (every read)"
DURING, AT_END = "during the run", "at the end, settled"
# The names lab.invariants gives its checks, in its order.
LEDGER_CHECKS = tuple(c.name for c in check([], [], settled=True).checks)
ALL_ENDED = "every transfer's workflow ended"
AS_EXPECTED = "every transfer ended as it had to (ledger outcome and workflow status)"
RIGHT_ACCOUNTS = "every movement hit its transfer's account with its amount"


class SoakError(Exception):
    """The soak cannot run; the message says why and what to do."""


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
    latency_ms: int = 0
    jitter_ms: int = 0

    def describe(self) -> str:
        hold = f"{self.hold:g} s"
        share = "" if self.rate >= 1 else f" ({self.rate:.0%} of calls)"
        if self.kind.endswith("-kill"):
            return f"kill {self.target} (SIGKILL), start it again after {hold}"
        if self.kind == "pause":
            return f"pause {self.target} for {hold}"
        if self.kind == "disconnect":
            return f"cut {self.target} off the network for {hold}"
        if self.kind == "bank-latency":
            return (
                f"bank {self.target} answers {self.latency_ms} ms +/- {self.jitter_ms} ms "
                f"late for {hold}"
            )
        if self.kind == "bank-down":
            return f"bank down for {hold}"
        mode = "error" if self.kind == "bank-error" else "drop_response"
        return f"bank {mode} on {self.target}{share} for {hold}"

    @property
    def service(self) -> str | None:
        """The container service a Docker-level fault acts on (None: the bank's switch)."""
        if LEVER_OF_KIND[self.kind] is BankFault:
            return None
        return self.target.split("-")[0]

    def fault(self) -> Fault:
        """The bank's fault switch setting for a bank-* kind."""
        mode = BANK_MODE_OF_KIND[self.kind]
        return Fault(mode, rate=self.rate, latency_ms=self.latency_ms, jitter_ms=self.jitter_ms)

    def lever(self, which: str = "all") -> Lever:
        """The catalogue's lever for this fault; ``which`` picks the container."""
        kind = LEVER_OF_KIND[self.kind]
        if kind is BankFault:
            return BankFault(self.target, self.fault())
        assert issubclass(kind, ServiceLever)
        return kind(self.target.split("-")[0], which)


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


def _target(rng: random.Random, kind: str, workers: int) -> dict[str, Any]:
    # The same draws whatever the kind, so one kind's settings never shift the next fault's.
    worker = f"worker-{rng.randint(1, max(1, workers))}"
    service = rng.choice(("temporal", "bank", worker))
    op = rng.choice(BANK_OPS)
    rate = rng.choice(RATES)
    latency = rng.randrange(500, 3001, 250)
    jitter = rng.randrange(0, latency // 2 + 1, 50)
    if kind == "worker-kill":
        return {"target": worker}
    if kind in ("bank-kill", "temporal-kill"):
        return {"target": kind.removesuffix("-kill")}
    if kind in ("pause", "disconnect"):
        return {"target": service}
    if kind == "bank-latency":
        return {"target": op, "latency_ms": latency, "jitter_ms": jitter}
    if kind == "bank-down":
        return {"target": "all"}
    return {"target": op, "rate": rate}  # bank-error, bank-drop


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


# --- what happened -----------------------------------------------------------------------


@dataclass
class FaultRecord:
    spec: FaultSpec
    started: float | None = None  # seconds since the soak began; None: never injected
    injected: float | None = None  # the lever in place (a kill or a restart takes time)
    undone: float | None = None  # when the lever was put back
    ended: float | None = None  # every service healthy again
    recovery: float | None = None  # undone -> the next transfer finishing
    error: str | None = None
    in_flight: int = 0  # transfers started and not ended when it struck
    burst: int = 0  # transfers started just before it struck


@dataclass
class TransferRecord:
    spec: TransferSpec
    started: float | None = None
    ended: float | None = None  # when this machine heard the workflow had ended
    status: str = "not started"  # running, completed, failed, terminated, ..., unknown
    outcome: str | None = None  # the ledger's verdict
    start_attempts: int = 0
    message: str = ""  # the workflow's failure, for people
    accepted: float | None = None  # when Temporal accepted the start

    @property
    def finished(self) -> bool:
        return self.status not in ("not started", "running", "unknown")


@dataclass
class Invariant:
    name: str
    checks: int = 0
    violations: int = 0
    first_violation: str | None = None

    def record(self, problem: str | None) -> None:
        self.checks += 1
        if problem:
            self.violations += 1
            if self.first_violation is None:
                self.first_violation = problem

    @property
    def verdict(self) -> str:
        if self.violations:
            return "violated"
        return "held" if self.checks else "not checked"


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


@dataclass
class SoakResult:
    project: str
    config: SoakConfig
    run_id: str = ""
    started_at: str = ""
    seconds: float = 0.0
    transfers: list[TransferRecord] = field(default_factory=list)
    faults: list[FaultRecord] = field(default_factory=list)
    invariants: list[Invariant] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    interrupted: bool = False
    peak_in_flight: int = 0


def fresh_invariants() -> list[Invariant]:
    """Every invariant the soak checks, in the order the report shows them."""
    return [
        Invariant(NO_NEGATIVE_READ),
        Invariant(CEILING_READ),
        *(Invariant(f"{DURING}: {name}") for name in LEDGER_CHECKS),
        *(Invariant(f"{AT_END}: {name}") for name in LEDGER_CHECKS),
        Invariant(ALL_ENDED),
        Invariant(AS_EXPECTED),
        Invariant(RIGHT_ACCOUNTS),
    ]


def recovery_after(undone: float, until: float | None, ends: Sequence[float]) -> float | None:
    """Seconds from ``undone`` to the first transfer end after it (before ``until``, the
    next fault's start, if given); None when no transfer ended in that window."""
    after = [e for e in ends if e >= undone and (until is None or e < until)]
    return round(min(after) - undone, 2) if after else None


def measure_recoveries(faults: Sequence[FaultRecord], ends: Sequence[float]) -> None:
    injected = [f for f in faults if f.started is not None]
    for i, record in enumerate(injected):
        if record.undone is None:
            continue
        following = injected[i + 1].started if i + 1 < len(injected) else None
        record.recovery = recovery_after(record.undone, following, ends)


def check_outcome(record: TransferRecord) -> str | None:
    """What is wrong with one ended transfer's outcome, or None."""
    spec, outcome = record.spec, record.outcome
    if outcome not in spec.expected:
        return (
            f"transfer {spec.reference_id} ({spec.kind}, ${spec.amount} {spec.source} -> "
            f"{spec.target}, max_attempts {spec.max_attempts}) is {outcome} in the ledger, "
            f"expected {' or '.join(spec.expected)} (workflow {record.status})"
            + (f": {record.message}" if record.message else "")
        )
    want = WORKFLOW_STATUS.get(outcome or "", "")
    if record.status != want:
        return (
            f"transfer {spec.reference_id} is {outcome} in the ledger but its workflow is "
            f"{record.status}, not {want}" + (f": {record.message}" if record.message else "")
        )
    return None


def check_movements(spec: TransferSpec, movements: Iterable[Movement]) -> str | None:
    """Each movement of a transfer on the right account with the right amount, or why not."""
    account = {"withdraw": spec.source, "deposit": spec.target, "refund": spec.source}
    for m in movements:
        parsed = split_key(m.idempotency_key)
        if parsed is None or parsed[0] != spec.reference_id:
            continue
        step = parsed[1]
        if m.account_id != account[step] or m.amount != spec.amount:
            return (
                f"ledger row {m.seq} ({m.idempotency_key}) moved ${m.amount} on {m.account_id}; "
                f"the transfer is ${spec.amount} from {spec.source} to {spec.target}"
            )
    return None


# --- the report --------------------------------------------------------------------------


def problems(result: SoakResult) -> list[str]:
    """Why the soak failed: empty when it passed."""
    found = [
        f"invariant {inv.verdict}: {inv.name}"
        + (f": {inv.first_violation}" if inv.first_violation else "")
        for inv in result.invariants
        if inv.verdict != "held" and not (result.interrupted and inv.verdict == "not checked")
    ]
    running = [t for t in result.transfers if t.started is not None and not t.finished]
    if running and not result.interrupted:
        found.append(
            f"{len(running)} transfer(s) not ended, e.g. {running[0].spec.reference_id} "
            f"({running[0].status})"
        )
    found.extend(
        f"fault {f.spec.number} ({f.spec.kind} {f.spec.target}): {f.error}"
        for f in result.faults
        if f.error
    )
    if result.interrupted:
        found.append("interrupted before the end: nothing was checked settled")
    return found


def exit_code(result: SoakResult) -> int:
    if result.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if problems(result) else EXIT_OK


def summary(result: SoakResult) -> dict[str, Any]:
    """The report as plain data (the JSON file)."""
    cfg = result.config
    transfers = result.transfers
    started = [t for t in transfers if t.started is not None]
    unexpected = [
        problem
        for t in transfers
        if t.finished and t.outcome is not None and (problem := check_outcome(t))
    ]
    injected = [f for f in result.faults if f.started is not None]
    recoveries: dict[str, dict[str, Any]] = {}
    for kind in FAULT_KINDS:
        of_kind = [f for f in injected if f.spec.kind == kind]
        if not of_kind:
            continue
        samples = [f.recovery for f in of_kind if f.recovery is not None]
        recoveries[kind] = {
            "median": round(statistics.median(samples), 2) if samples else None,
            "worst": max(samples) if samples else None,
            "measured": len(samples),
            "faults": len(of_kind),
        }
    found = problems(result)
    return {
        "run_id": result.run_id,
        "project": result.project,
        "seed": cfg.seed,
        "started_at": result.started_at,
        "seconds": round(result.seconds, 1),
        "minutes": round(result.seconds / 60, 1),
        "options": {
            "transfers": cfg.transfers,
            "concurrency": cfg.concurrency,
            "workers": cfg.workers,
            "faults": list(cfg.kinds),
            "fault_count": cfg.faults,
            "hold": list(cfg.hold),
            "gap": list(cfg.gap),
            "failing": cfg.failing,
            "one_attempt": cfg.one_attempt,
            "duration": cfg.duration,
        },
        "verdict": "interrupted" if result.interrupted else ("fail" if found else "pass"),
        "problems": found,
        "transfers": {
            "planned": len(transfers),
            "started": len(started),
            "ended": sum(t.finished for t in transfers),
            "by_kind": dict(Counter(t.spec.kind for t in transfers)),
            "by_outcome": dict(Counter(t.outcome or t.status for t in started)),
            "by_status": dict(Counter(t.status for t in transfers)),
            "one_attempt": sum(t.spec.max_attempts == 1 for t in transfers),
            "peak_in_flight": result.peak_in_flight,
            "unexpected": unexpected[:20],
            "unexpected_count": len(unexpected),
        },
        "faults": {
            "planned": len(result.faults),
            "injected": len(injected),
            "by_kind": {
                k: n for k in FAULT_KINDS if (n := sum(f.spec.kind == k for f in injected))
            },
            "errors": sum(bool(f.error) for f in result.faults),
            "events": [
                {
                    **asdict(f.spec),
                    "description": f.spec.describe(),
                    "started": _round(f.started),
                    "injected": _round(f.injected),
                    "undone": _round(f.undone),
                    "ended": _round(f.ended),
                    "recovery": f.recovery,
                    "in_flight": f.in_flight,
                    "burst": f.burst,
                    "error": f.error,
                }
                for f in result.faults
            ],
        },
        "recovery_seconds": recoveries,
        "invariants": [
            {
                "name": inv.name,
                "verdict": inv.verdict,
                "checks": inv.checks,
                "violations": inv.violations,
                "first_violation": inv.first_violation,
            }
            for inv in result.invariants
        ],
        "notes": result.notes,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def render(data: dict[str, Any]) -> list[str]:
    """The report for people, from summary()."""
    t, f = data["transfers"], data["faults"]
    lines = [
        f"Soak {data['run_id']} on project {data['project']}: seed {data['seed']}, "
        f"{t['started']} transfers, {f['injected']} faults, {data['minutes']} min.",
        "",
        f"Transfers: {t['planned']} planned, {t['started']} started, {t['ended']} ended, "
        f"at most {t['peak_in_flight']} in flight at once.",
    ]
    lines.append("  by kind:    " + ", ".join(f"{n} {k}" for k, n in sorted(t["by_kind"].items())))
    lines.append(
        "  by outcome: " + ", ".join(f"{n} {k}" for k, n in sorted(t["by_outcome"].items()))
    )
    if t["unexpected_count"]:
        lines.append(f"  NOT AS EXPECTED: {t['unexpected_count']}, e.g. {t['unexpected'][0]}")
    struck = sorted(e["in_flight"] for e in f["events"] if e["started"] is not None)
    lines += [
        "",
        f"Faults: {f['injected']} of {f['planned']} injected"
        + (
            f", each meeting {struck[0]} to {struck[-1]} transfers in flight "
            f"(median {statistics.median(struck):g})."
            if struck
            else "."
        ),
    ]
    lines.append(f"  {'kind':<15} {'count':>5} {'recovery median':>16} {'worst':>8}")
    for kind, n in f["by_kind"].items():
        rec = data["recovery_seconds"].get(kind, {})
        median, worst = rec.get("median"), rec.get("worst")
        lines.append(
            f"  {kind:<15} {n:>5} {_seconds(median):>16} {_seconds(worst):>8}"
            + (
                f"  ({rec['faults'] - rec['measured']} not measured: no transfer ended "
                "between the undo and the next fault)"
                if rec and rec["measured"] < rec["faults"]
                else ""
            )
        )
    for event in f["events"]:
        if event["error"]:
            lines.append(f"  FAULT {event['number']} FAILED: {event['error']}")
    lines += ["", "Invariants:"]
    for inv in data["invariants"]:
        mark = {"held": "held    ", "violated": "VIOLATED", "not checked": "UNCHECKED"}
        lines.append(f"  {mark[inv['verdict']]} {inv['name']} ({inv['checks']} checks)")
        if inv["first_violation"]:
            more = inv["violations"] - 1
            lines.append(
                f"           first: {inv['first_violation']}" + (f" (+{more} more)" if more else "")
            )
    if data["notes"]:
        lines += ["", "Notes:", *(f"  {note}" for note in data["notes"])]
    lines.append("")
    if data["verdict"] == "pass":
        lines.append(
            "PASS: every invariant held, every transfer ended as it had to, every fault "
            "was pulled and undone."
        )
    else:
        lines.append(f"{data['verdict'].upper()}:")
        lines.extend(f"  {p}" for p in data["problems"])
    return lines


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def write_json(result: SoakResult, path: Path) -> dict[str, Any]:
    data = summary(result)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return data


# --- the connections: found again when a restart moves a published port -----------------


class Connections:
    """The Temporal client and the bank client this machine uses.

    With random published ports (a test's lab, --own-lab) a restarted or reconnected
    service comes back on another port: after a failure the address is read again from
    Docker and, if it moved, a new client is made. A paused server hangs a call rather
    than refusing it, so every connect has a deadline.
    """

    RECHECK_EVERY = 2.0  # seconds between two reads of a moved address
    BANK_TIMEOUT = 3.0

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self._client: Client | None = None
        self._address = ""
        self._bank: BankClient | None = None
        self._bank_url = ""
        self._lock = asyncio.Lock()
        self._bank_lock = asyncio.Lock()
        self._next_connect = 0.0
        self._next_check: dict[str, float] = {}

    async def client(self) -> Client:
        async with self._lock:
            if self._client is not None:
                return self._client
            if time.monotonic() < self._next_connect:
                raise Unreachable("Temporal: reconnecting")
            self._next_connect = time.monotonic() + 1.0
            try:
                address = await lever(lambda: self.stack.temporal_address)
            except StackError as err:
                raise Unreachable(str(err)) from err
            self._client = await connect_temporal(address, call_timeout=5)
            self._address = address
            return self._client

    async def bank(self) -> BankClient:
        async with self._bank_lock:
            if self._bank is None:
                try:
                    url = await lever(lambda: self.stack.bank_url)
                except StackError as err:
                    raise Unreachable(str(err)) from err
                self._bank, self._bank_url = (
                    BankClient(url, timeout=self.BANK_TIMEOUT, token=self.stack.token),
                    url,
                )
            return self._bank

    async def temporal_failed(self, *, now: bool = False) -> None:
        """A Temporal call failed (or Temporal came back): reconnect if its port moved."""
        if not self._due("temporal", now):
            return
        try:
            address = await lever(lambda: self.stack.temporal_address)
        except StackError:
            return  # not published right now (killed, cut off): keep what we have
        async with self._lock:
            if address != self._address:
                self._client, self._next_connect = None, 0.0

    async def bank_failed(self, *, now: bool = False) -> None:
        """A bank call failed (or the bank came back): a new client if its port moved."""
        if not self._due("bank", now):
            return
        try:
            url = await lever(lambda: self.stack.bank_url)
        except StackError:
            return
        async with self._bank_lock:
            if url != self._bank_url:
                old, self._bank_url = self._bank, url
                self._bank = BankClient(url, timeout=self.BANK_TIMEOUT, token=self.stack.token)
                if old is not None:
                    await old.aclose()

    def _due(self, what: str, now: bool) -> bool:
        if not now and time.monotonic() < self._next_check.get(what, 0.0):
            return False
        self._next_check[what] = time.monotonic() + self.RECHECK_EVERY
        return True

    async def aclose(self) -> None:
        if self._bank is not None:
            await self._bank.aclose()


class PlannedClock:
    """The schedule's own time: it runs during the gaps and the holds, and stands still
    while services restart, so the transfers keep pace with the faults, not the wall."""

    def __init__(self) -> None:
        self.segment(0.0, 0.0)

    def segment(self, base: float, length: float) -> None:
        self.base, self.length, self.since = base, max(0.0, length), time.monotonic()

    def now(self) -> float:
        return self.base + min(time.monotonic() - self.since, self.length)


# --- the soak ----------------------------------------------------------------------------


class Soak:
    def __init__(self, stack: Stack, config: SoakConfig, say: Say, *, scale_back: bool) -> None:
        self.stack = stack
        self.scale_back = scale_back
        self.cfg = config
        self.say = say
        self.conns = Connections(stack)
        self.schedule = config.schedule()
        self.result = SoakResult(project=stack.project, config=config)
        self.result.run_id = uuid.uuid4().hex[:6]
        self.releases = plan_releases(
            config.seed, config.transfers, self.schedule, config.concurrency
        )
        self.result.faults = [
            FaultRecord(spec, burst=burst)
            for spec, burst in zip(self.schedule.faults, self.releases.bursts, strict=True)
        ]
        self.credit = 0  # transfers to start at once: a fault's burst
        self.result.invariants = fresh_invariants()
        self.invariants = {inv.name: inv for inv in self.result.invariants}
        self.clock = PlannedClock()
        self.gate = asyncio.Semaphore(config.concurrency)
        self.tasks: list[asyncio.Task[None]] = []
        self.ends: list[float] = []
        self.current: FaultRecord | None = None
        self.cut = False  # --duration reached: no more faults, no more transfers
        self.probes = self.releases.probes  # see plan_releases
        self.last_end = -1.0  # when the latest transfer ended (seconds since the start)
        self.ceiling = 0
        self.original_workers = 0
        self.touched = False
        self.reads = self.unanswered_reads = self.ledger_checks = 0
        self.client_errors: Counter[str] = Counter()
        self.t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def log(self, text: str) -> None:
        self.say(f"[{self.now():6.1f}s] {text}")

    # --- the whole run ---------------------------------------------------

    async def run(self) -> SoakResult:
        self.result.started_at = datetime.now(UTC).isoformat(timespec="seconds")
        prepared = False
        try:
            await self._prepare()
            prepared = True
            self.t0 = time.monotonic()
            await self._soak()
        except asyncio.CancelledError:
            # Ctrl+C: the lab is put back below, and the report says what was seen.
            self.result.interrupted = True
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        finally:
            if self.touched:
                await self._put_back()
            if not prepared:
                await self.conns.aclose()
        if not prepared:  # interrupted while getting ready: nothing ran
            return self.result
        if not self.result.interrupted:
            await self._final_checks()
        self.result.seconds = self.now()
        self._notes()
        await self.conns.aclose()
        return self.result

    async def _prepare(self) -> None:
        stack, cfg = self.stack, self.cfg
        for service in SERVICES:
            if not await lever(stack.containers, service):
                raise SoakError(
                    f"The lab is not running in Compose project {stack.project!r}: there is no "
                    f"{service} container. Start it with `make up`, or use --own-lab."
                )
        for repaired in await restore(stack):
            self.say(f"  {repaired} (left over from an interrupted run?)")
        try:
            bank = await self.conns.bank()
            await bank.clear_faults()
            baseline = await check_bank(bank, settled=False)
            accounts = await bank.accounts()
        except Exception as err:
            raise SoakError(f"The bank does not answer: {err}") from err
        if not baseline.ok:
            broken = "; ".join(line for line in baseline.lines() if line.startswith("FAIL"))
            raise SoakError(
                f"The bank's ledger breaks its invariants before the soak starts ({broken}). "
                "`make clean up` starts it afresh, or use --own-lab."
            )
        # All the money there is: the balances plus what is on its way between accounts.
        self.ceiling = baseline.expected_total + baseline.in_flight
        balances = {a.id: a.balance for a in accounts}
        self.result.transfers = [
            TransferRecord(spec)
            for spec in plan_transfers(
                cfg.seed,
                cfg.transfers,
                balances,
                run_id=self.result.run_id,
                failing=cfg.failing,
                one_attempt=cfg.one_attempt,
            )
        ]
        self.original_workers = len(await lever(stack.containers, "worker"))
        self.touched = True  # from here on, the lab is put back whatever happens
        if self.original_workers != cfg.workers:
            self.say(f"Scaling the worker service to {cfg.workers} containers...")
            await self._scale(cfg.workers)
        try:
            await self.conns.client()
        except Unreachable as err:
            raise SoakError(str(err)) from err
        faults = self.schedule.faults
        self.say(
            f"Soak {self.result.run_id} on project {stack.project}: seed {cfg.seed}, "
            f"{cfg.transfers} transfers (concurrency {cfg.concurrency}), {cfg.workers} workers, "
            f"{len(faults)} faults over about {self.schedule.length:.0f} s of planned time "
            "(plus restarts)."
        )
        for spec in faults:
            self.say(f"  planned at +{spec.at:5.1f} s: {spec.number:>2}. {spec.describe()}")

    async def _scale(self, workers: int) -> None:
        await lever(
            self.stack.compose,
            "up",
            "--detach",
            "--no-deps",
            "--no-recreate",
            "--scale",
            f"worker={workers}",
            "worker",
        )
        await lever(self.stack.wait_healthy, "worker", timeout=120)

    async def _soak(self) -> None:
        watcher = asyncio.create_task(self._watch())
        progress = asyncio.create_task(self._progress())
        dispatcher = asyncio.create_task(self._dispatch())
        try:
            await self._chaos()
            deadline = time.monotonic() + self.schedule.length + self.cfg.settle
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(dispatcher), self._left(deadline))
            if self.tasks:
                await asyncio.wait(self.tasks, timeout=self._left(deadline))
            self.log(
                f"{sum(t.finished for t in self.result.transfers)} transfers ended; "
                "stopping the watchers."
            )
        finally:
            for task in (*self.tasks, dispatcher, watcher, progress):
                task.cancel()
            await asyncio.gather(*self.tasks, dispatcher, watcher, progress, return_exceptions=True)

    @staticmethod
    def _left(deadline: float) -> float:
        return max(0.1, deadline - time.monotonic())

    async def _put_back(self) -> None:
        """Every service up and healthy, no bank fault, as many workers as before."""
        try:
            for repaired in await restore(self.stack):
                self.say(f"  put back: {repaired}")
            if (
                self.scale_back
                and self.original_workers
                and self.original_workers != self.cfg.workers
            ):
                self.say(f"Scaling the worker service back to {self.original_workers}.")
                await self._scale(self.original_workers)
            await self.conns.bank_failed(now=True)
            await self._bank_call(lambda bank: bank.clear_faults(), within=60)
        except Exception as err:
            self.result.notes.append(f"Could not put the lab back as it was: {err}")
            self.say(f"Could not put the lab back as it was: {err}")

    # --- the transfers ---------------------------------------------------

    async def _dispatch(self) -> None:
        """Starts the transfers in order: a burst when a fault asks for one (self.credit),
        the others at their planned times (plan_releases)."""
        trickle = self.releases.trickle
        next_ = 0  # the next trickle time
        for record in self.result.transfers:
            due = trickle[next_] if next_ < len(trickle) else math.inf
            await self._reach(due, self._released_early)
            if self.cut:
                return
            if self.credit > 0:
                self.credit -= 1
            else:
                next_ += 1
            await self.gate.acquire()
            if self._stopped():
                self.gate.release()
                return
            record.started, record.status = self.now(), "running"
            self.tasks.append(asyncio.create_task(self._transfer(record)))
            self.result.peak_in_flight = max(self.result.peak_in_flight, self._in_flight())

    def _stopped(self) -> bool:
        return self.cut

    def _released_early(self) -> bool:
        return self.cut or self.credit > 0

    def _in_flight(self) -> int:
        return sum(t.status == "running" for t in self.result.transfers)

    async def _reach(self, planned: float, stop: Callable[[], bool]) -> None:
        """Until the planned clock reaches ``planned`` (or ``stop()``)."""
        # Polling: the planned clock stands still during restarts, so no timer can say when.
        while self.clock.now() < planned and not stop():  # noqa: ASYNC110
            await asyncio.sleep(0.1)

    async def _transfer(self, record: TransferRecord) -> None:
        try:
            await self._start(record)
            await self._follow(record)
        finally:
            self.gate.release()

    async def _start(self, record: TransferRecord) -> None:
        """Starts the workflow, retrying while Temporal is away (a repeat is harmless)."""
        while True:
            record.start_attempts += 1
            try:
                client = await self.conns.client()
                await asyncio.wait_for(
                    client.start_workflow(
                        MONEY_TRANSFER_WORKFLOW,
                        record.spec.details(),
                        id=transfer_id(record.spec.reference_id),
                        task_queue=MONEY_TRANSFER_TASK_QUEUE_NAME,
                        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                        rpc_timeout=timedelta(seconds=5),
                    ),
                    8,
                )
            except WorkflowAlreadyStartedError:
                pass  # an earlier try got through, its answer did not
            except Exception as err:
                self.client_errors[type(err).__name__] += 1
                await self.conns.temporal_failed()
                await asyncio.sleep(1.0)
                continue
            record.accepted = self.now()
            return

    async def _follow(self, record: TransferRecord) -> None:
        """Waits for the workflow's end, across Temporal restarts and pauses."""
        workflow_id = transfer_id(record.spec.reference_id)
        while True:
            try:
                client = await self.conns.client()
                handle = client.get_workflow_handle(workflow_id, result_type=str)
                await asyncio.wait_for(handle.result(rpc_timeout=timedelta(seconds=20)), 20)
                record.status = "completed"
            except WorkflowFailureError as err:
                cause = err.cause
                if isinstance(cause, ApplicationError) or cause is None:
                    record.status = "failed"
                else:
                    record.status = type(cause).__name__.removesuffix("Error").lower()
                record.message = str(cause or err)
            except TimeoutError:
                continue  # still running (or Temporal frozen): ask again
            except Exception as err:
                self.client_errors[type(err).__name__] += 1
                await self.conns.temporal_failed()
                await asyncio.sleep(1.0)
                continue
            record.ended = self.now()
            self.ends.append(record.ended)
            self.last_end = max(self.last_end, record.ended)
            return

    # --- the faults ------------------------------------------------------

    async def _chaos(self) -> None:
        planned_end = 0.0
        for record in self.result.faults:
            spec = record.spec
            self.clock.segment(planned_end, spec.at - planned_end)
            await self._reach(spec.at, self._over)
            if self._over():
                break
            await self._fault(record)
            planned_end = spec.at + spec.hold
        self.clock.segment(planned_end, self.schedule.length - planned_end)
        # The probes left and the bursts of faults that never came still start (unless
        # the run was cut).
        self.credit += self.probes + sum(f.burst for f in self.result.faults if f.started is None)
        self.probes = 0
        skipped = sum(f.started is None for f in self.result.faults)
        if skipped:
            self.log(f"{skipped} planned fault(s) not injected.")
        elif self.result.faults:
            self.log("Every planned fault was injected and undone; the transfers finish.")

    def _over(self) -> bool:
        if self.cut:
            return True
        if self.now() > self.cfg.duration:
            if not self.cut:
                self.cut = True
                self.log(f"The --duration cap ({self.cfg.duration:g} s) is reached.")
            return True
        transfers = self.result.transfers
        # Every transfer started and ended: faults would hit an idle lab.
        return bool(transfers) and all(t.finished for t in transfers)

    async def _fault(self, record: FaultRecord) -> None:
        spec = record.spec
        total = len(self.result.faults)
        self.current = record
        record.started = self.now()
        self.credit += record.burst
        await self._burst_accepted()
        record.in_flight = self._in_flight()
        self.log(
            f"fault {spec.number}/{total}: {spec.describe()} "
            f"({record.in_flight} transfers in flight)"
        )
        undo: Callable[[], Awaitable[None]] | None = None
        try:
            undo = await self._inject(spec)
            record.injected = self.now()
            self.clock.segment(spec.at, spec.hold)
            await asyncio.sleep(spec.hold)
        except Exception as err:
            record.error = f"could not inject it: {err}"
        finally:
            self.clock.segment(spec.at + spec.hold, 0.0)
            try:
                if undo is not None:
                    record.undone = self.now()
                    if self._in_flight() == 0 and self.probes > 0:
                        self.probes, self.credit = self.probes - 1, self.credit + 1
                    await undo()
                await self._healthy(spec)
            except Exception as err:
                record.error = f"could not undo it: {err}"
                self.log(f"fault {spec.number}: {record.error}; putting every service back")
                try:
                    await restore(self.stack)
                except Exception as again:
                    # The lab cannot be put right: no more faults, no more transfers.
                    record.error += f"; nor put every service back: {again}"
                    self.cut = True
            record.ended = self.now()
            self.current = None
        if record.error is None and record.undone is not None:
            healthy = record.ended - record.undone
            flowing = await self._flowing_again(record.undone)
            self.log(
                f"fault {spec.number}/{total} undone; every service healthy {healthy:.1f} s "
                "later, "
                + (
                    f"transfers ending again {flowing:.1f} s after the undo"
                    if flowing is not None
                    else "no transfer ended after it"
                )
            )

    async def _burst_accepted(self) -> None:
        """Until the burst's transfers are started (Temporal accepted them), 10 s at most:
        then the lever lands on them in flight."""
        deadline = self.now() + 10
        while self.now() < deadline:
            running = [t for t in self.result.transfers if t.status == "running"]
            if self.credit == 0 and all(t.accepted is not None for t in running):
                return
            await asyncio.sleep(0.05)

    async def _flowing_again(self, undone: float) -> float | None:
        """Waits (at most RECOVERY_WAIT) until a transfer ends after ``undone``: the next
        fault never lands on a lab still recovering from the last one."""
        deadline = self.now() + RECOVERY_WAIT
        while self.last_end < undone:
            # Nothing in flight and nothing about to start (no probe left): no end to await.
            idle = self._in_flight() == 0 and self.credit == 0
            if idle or self.now() > deadline:
                if not idle:
                    self.result.notes.append(
                        f"No transfer ended within {RECOVERY_WAIT:g} s of undoing the fault at "
                        f"{undone:.1f} s."
                    )
                return None
            await asyncio.sleep(0.1)
        return self.last_end - undone

    async def _inject(self, spec: FaultSpec) -> Callable[[], Awaitable[None]]:
        """Pulls the lever; returns what puts it back."""
        pulled = spec.lever(await self._which(spec))
        if isinstance(pulled, BankFault):
            # Through the soak's own bank client, which follows a bank that moved ports.
            await self._bank_call(lambda b: b.set_fault(pulled.operation, pulled.fault), 15)

            async def clear() -> None:
                await self._bank_call(lambda bank: bank.clear_faults(), within=60)

            return clear
        await lever(pulled.pull, self.stack)

        async def undo() -> None:
            await lever(pulled.undo, self.stack)

        return undo

    async def _which(self, spec: FaultSpec) -> str:
        """worker-2 -> the second worker container's number ("all" for the others)."""
        if not spec.target.startswith("worker-"):
            return "all"
        found = await lever(self.stack.containers, "worker")
        if not found:
            raise StackError("no worker container exists")
        n = int(spec.target.removeprefix("worker-"))
        return found[(n - 1) % len(found)].name.rsplit("-", 1)[-1]

    async def _healthy(self, spec: FaultSpec) -> None:
        """After the undo: the service it touched healthy again (all of them after a
        Temporal fault: the workers depend on it), and our clients on the right ports."""
        service = spec.service
        if service == "temporal":
            for repaired in await restore(self.stack):
                self.log(f"  also: {repaired}")
        elif service is not None:
            await lever(self.stack.wait_healthy, service, timeout=120)
        if service in ("temporal", "bank"):
            await self.conns.temporal_failed(now=True)
            await self.conns.bank_failed(now=True)

    async def _bank_call(self, call: Callable[[BankClient], Awaitable[Any]], within: float) -> None:
        deadline = time.monotonic() + within
        while True:
            try:
                await call(await self.conns.bank())
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await self.conns.bank_failed()
                await asyncio.sleep(0.5)

    # --- watching the money ----------------------------------------------

    async def _watch(self) -> None:
        next_ledger = 0.0
        while True:
            try:
                bank = await self.conns.bank()
                accounts = await bank.accounts()
            except Exception:
                self.unanswered_reads += 1
                await self.conns.bank_failed()
            else:
                self.reads += 1
                self._check_read(accounts)
                if self.now() >= next_ledger:
                    next_ledger = self.now() + self.cfg.ledger_every
                    try:
                        report = await asyncio.wait_for(check_bank(bank, settled=False), 15)
                    except Exception:
                        pass  # the bank went away meanwhile: the next round tries again
                    else:
                        self.ledger_checks += 1
                        self._record_ledger(DURING, report)
            await asyncio.sleep(self.cfg.read_every)

    def _when(self) -> str:
        during = (
            f", during fault {self.current.spec.number} ({self.current.spec.describe()})"
            if self.current
            else ""
        )
        return f"at {self.now():.1f} s{during}"

    def _check_read(self, accounts: Sequence[Account]) -> None:
        negative = [a for a in accounts if a.balance < 0]
        self.invariants[NO_NEGATIVE_READ].record(
            f"{self._when()}: " + ", ".join(f"{a.id} held ${a.balance}" for a in negative)
            if negative
            else None
        )
        total = sum(a.balance for a in accounts)
        self.invariants[CEILING_READ].record(
            f"{self._when()}: the bank held ${total}, more than the ${self.ceiling} there is"
            if total > self.ceiling
            else None
        )

    def _record_ledger(self, when: str, report: LedgerReport) -> None:
        for c in report.checks:
            inv = self.invariants[f"{when}: {c.name}"]
            first = c.violations[0] if c.violations else None
            inv.record(f"{self._when()}: {first}" if first and when == DURING else first)

    async def _progress(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.progress_every)
            transfers = self.result.transfers
            started = sum(t.started is not None for t in transfers)
            statuses = Counter(t.status for t in transfers if t.finished)
            ended = sum(statuses.values())
            fault = (
                f"fault {self.current.spec.number} {self.current.spec.kind} "
                f"{self.current.spec.target}"
                if self.current
                else "no fault"
            )
            violated = [inv.name for inv in self.result.invariants if inv.violations]
            health = (
                f"invariants hold ({self.reads} reads, {self.ledger_checks} ledger checks)"
                if not violated
                else f"{len(violated)} INVARIANT(S) VIOLATED: {violated[0]}"
            )
            self.log(
                f"transfers {started}/{len(transfers)} started, {ended} ended "
                f"({', '.join(f'{n} {s}' for s, n in sorted(statuses.items())) or 'none yet'}), "
                f"{started - ended} in flight | {fault} | {health}"
            )

    # --- the end ---------------------------------------------------------

    async def _final_checks(self) -> None:
        transfers = self.result.transfers
        started = [t for t in transfers if t.started is not None]
        self.say("")
        self.log("Checking the outcome of every transfer and the settled ledger...")
        client = await self._client_within(60)
        for record in started:
            if not record.finished and client is not None:
                record.status = await self._status(client, record)
        running_elsewhere = 0
        if client is not None:
            query = f"WorkflowType = '{MONEY_TRANSFER_WORKFLOW}' AND ExecutionStatus = 'Running'"
            with contextlib.suppress(Exception):
                running_elsewhere = (
                    await client.count_workflows(query, rpc_timeout=timedelta(seconds=10))
                ).count
        ours_running = sum(not t.finished for t in started)
        settled = running_elsewhere == 0
        if not settled and running_elsewhere > ours_running:
            self.result.notes.append(
                f"{running_elsewhere - ours_running} MoneyTransfer workflow(s) of someone else "
                "still ran at the end: the settled check allowed money in flight for them."
            )
        report: LedgerReport | None = None
        movements: list[Movement] = []
        try:
            bank = await self.conns.bank()
            report = await check_bank(bank, settled=settled)
            movements = await ledger_after(bank)
        except Exception as err:
            self.result.notes.append(f"Could not read the bank's ledger at the end: {err}")
        if report is not None:
            self._record_ledger(AT_END, report)
        by_ref: dict[str, list[Movement]] = {}
        for m in movements:
            parsed = split_key(m.idempotency_key)
            if parsed:
                by_ref.setdefault(parsed[0], []).append(m)
        for record in started:
            spec = record.spec
            self.invariants[ALL_ENDED].record(
                None
                if record.finished
                else f"transfer {spec.reference_id} is {record.status} "
                f"(workflow {transfer_id(spec.reference_id)})"
            )
            if report is None or not record.finished:
                continue
            record.outcome = report.outcome(spec.reference_id)
            self.invariants[AS_EXPECTED].record(check_outcome(record))
            self.invariants[RIGHT_ACCOUNTS].record(
                check_movements(spec, by_ref.get(spec.reference_id, []))
            )
        measure_recoveries(self.result.faults, sorted(self.ends))

    async def _client_within(self, seconds: float) -> Client | None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                return await self.conns.client()
            except Exception:
                await self.conns.temporal_failed(now=True)
                await asyncio.sleep(1.0)
        self.result.notes.append("Temporal did not answer at the end.")
        return None

    async def _status(self, client: Client, record: TransferRecord) -> str:
        try:
            handle = client.get_workflow_handle(transfer_id(record.spec.reference_id))
            status = (await handle.describe(rpc_timeout=timedelta(seconds=5))).status
        except Exception as err:
            record.message = f"describe failed: {err}"
            return "unknown"
        names = {
            WorkflowExecutionStatus.COMPLETED: "completed",
            WorkflowExecutionStatus.FAILED: "failed",
            WorkflowExecutionStatus.RUNNING: "running",
        }
        return names.get(status, status.name.lower()) if status else "unknown"

    def _notes(self) -> None:
        notes = self.result.notes
        if self.client_errors:
            errors = ", ".join(f"{n} {kind}" for kind, n in self.client_errors.most_common())
            notes.append(
                f"This machine's Temporal client retried {sum(self.client_errors.values())} "
                f"calls while Temporal was away or frozen ({errors})."
            )
        if self.reads or self.unanswered_reads:
            notes.append(
                f"The balances were read {self.reads} times and the ledger checked "
                f"{self.ledger_checks} times during the run; {self.unanswered_reads} reads got "
                "no answer (the bank killed, frozen or cut off)."
            )
        running = sum(t.status == "running" for t in self.result.transfers)
        if running and self.result.interrupted:
            notes.append(
                f"{running} transfers were still running when the soak was interrupted; "
                "they finish by themselves (`make status` shows them)."
            )
        not_started = sum(t.started is None for t in self.result.transfers)
        if not_started and not self.result.interrupted:
            notes.append(
                f"{not_started} transfers were never started: the run was cut short "
                "(--duration, or the transfers before them did not end within --settle)."
            )
        once = [t for t in self.result.transfers if t.spec.max_attempts == 1]
        if once:
            notes.append(
                f"{len(once)} transfers had max_attempts=1 "
                f"({sum(t.spec.kind == NORMAL for t in once)} of them normal transfers)."
            )


async def soak(
    stack: Stack, config: SoakConfig, say: Say = print, *, scale_back: bool = True
) -> SoakResult:
    """Runs the soak on a running lab; the lab is put back as it was, whatever happens
    (``scale_back=False``: the extra workers stay, for a lab about to be thrown away).

    Raises SoakError when it cannot start (no lab, an already broken ledger...).
    """
    return await Soak(stack, config, say, scale_back=scale_back).run()


# --- the command line --------------------------------------------------------------------


def _range(text: str) -> tuple[float, float]:
    try:
        low, _, high = text.partition(":")
        pair = (float(low), float(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give MIN:MAX in seconds, e.g. 2:6") from None
    if not 0 <= pair[0] <= pair[1]:
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 <= MIN <= MAX")
    return pair


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a share from 0 to 1")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a whole number from 1")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Fault kinds:\n"
        + "\n".join(f"  {kind:<14} {text}" for kind, text in KIND_HELP.items()),
    )
    p.add_argument(
        "--project",
        default=None,
        help=f"the Compose project to soak (default {DEFAULT_PROJECT}, the one `make up` "
        f"starts; with --own-lab, {OWN_LAB_PROJECT})",
    )
    p.add_argument(
        "--own-lab",
        action="store_true",
        help="start a lab of its own on random ports and delete it afterwards",
    )
    p.add_argument("--transfers", type=_positive, default=300, help="how many (default 300)")
    p.add_argument(
        "--concurrency", type=_positive, default=20, help="transfers in flight at most (20)"
    )
    p.add_argument("--seed", type=int, default=None, help="the schedule's seed (default: random)")
    p.add_argument(
        "--workers", type=_positive, default=2, help="worker containers during the soak (2)"
    )
    p.add_argument(
        "--faults",
        default="all",
        help="comma list of fault kinds (below), all (default) or none",
    )
    p.add_argument(
        "--fault-count",
        type=int,
        default=None,
        help="how many faults (default: transfers / 10, at least one of each kind)",
    )
    p.add_argument("--hold", type=_range, default=(2.0, 6.0), help="MIN:MAX seconds a fault lasts")
    p.add_argument("--gap", type=_range, default=(3.0, 8.0), help="MIN:MAX seconds between faults")
    p.add_argument(
        "--failing",
        type=_share,
        default=0.1,
        help="share of transfers that must fail: unknown target, unknown source, too much (0.1)",
    )
    p.add_argument(
        "--one-attempt",
        type=_share,
        default=0.2,
        help="share of normal transfers with max_attempts=1 (0.2): one try, so a lost answer "
        "makes the workflow settle the step with the bank before it refunds or gives up",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=3600.0,
        help="cap in seconds on the faults phase; then no new faults or transfers (3600)",
    )
    p.add_argument(
        "--settle",
        type=float,
        default=180.0,
        help="seconds the transfers may take to end once the faults stop (180)",
    )
    p.add_argument(
        "--json", type=Path, default=DEFAULT_JSON, help="the report as JSON (build/soak.json)"
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the fault schedule for these options and exit; touches nothing",
    )
    return p


def config_from(args: argparse.Namespace) -> SoakConfig:
    return SoakConfig(
        transfers=args.transfers,
        concurrency=args.concurrency,
        seed=args.seed,
        workers=args.workers,
        kinds=parse_kinds(args.faults),
        fault_count=args.fault_count,
        hold=args.hold,
        gap=args.gap,
        failing=args.failing,
        one_attempt=args.one_attempt,
        duration=args.duration,
        settle=args.settle,
    )


def main(argv: Sequence[str] | None = None, say: Say = print) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.seed is None:
        args.seed = random.randrange(1_000_000)
    try:
        config = config_from(args)
    except ValueError as err:
        p.error(str(err))
    if args.fault_count is not None and args.fault_count < 0:
        p.error("--fault-count cannot be negative")
    project = args.project or (OWN_LAB_PROJECT if args.own_lab else DEFAULT_PROJECT)
    if args.own_lab and project == DEFAULT_PROJECT:
        p.error(f"--own-lab deletes its lab afterwards: it will not use {DEFAULT_PROJECT!r}")
    if args.dry_run:
        schedule = config.schedule()
        say(
            f"seed {config.seed}: {len(schedule.faults)} faults over {schedule.length:g} s "
            "of planned time"
        )
        for spec in schedule.faults:
            say(f"  +{spec.at:6.1f} s  {spec.number:>3}. {spec.kind:<14} {spec.describe()}")
        return EXIT_OK
    say(f"Seed {config.seed}: the same options with --seed {config.seed} repeat this schedule.")
    try:
        result = asyncio.run(_run(project, args.own_lab, config, say))
    except SoakError as err:
        say(f"Cannot soak: {err}")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        say("Interrupted.")
        return EXIT_INTERRUPTED
    data = write_json(result, args.json)
    say("")
    for line in render(data):
        say(line)
    say(f"\nWritten to {args.json}")
    return exit_code(result)


async def _run(project: str, own_lab: bool, config: SoakConfig, say: Say) -> SoakResult:
    if not own_lab:
        return await soak(Stack(project=project), config, say)
    from lab.testing import Lab  # testcontainers: only needed here

    lab = Lab(project=project)
    say(f"Starting a lab of its own (project {project}, random ports)...")
    await asyncio.to_thread(lab.__enter__)
    try:
        return await soak(lab, config, say, scale_back=False)
    finally:
        say(f"Removing project {project} and its volumes...")
        await asyncio.to_thread(lab.__exit__, None, None, None)


if __name__ == "__main__":
    sys.exit(main())
