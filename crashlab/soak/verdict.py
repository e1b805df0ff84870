"""The soak's verdicts: every invariant it checks, each transfer's outcome against what it
had to be, the recovery after each fault, and the exit code.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bank.models import Movement
from crashlab.invariants import (
    check,
    split_key,
)
from crashlab.soak.plan import WORKFLOW_STATUS, TransferSpec
from crashlab.soak.records import FaultRecord, Invariant, SoakResult, TransferRecord
from worker.workflows import BANK_CALL_TIMEOUT

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


# --- the invariants ----------------------------------------------------------------------

NO_NEGATIVE_READ = "no balance is ever negative (every read of the balances)"
CEILING_READ = "the bank never holds more money than it started with (every read)"
DURING, AT_END = "during the run", "at the end, settled"
# The names crashlab.invariants gives its checks, in its order.
LEDGER_CHECKS = tuple(c.name for c in check([], [], settled=True).checks)
ALL_ENDED = "every transfer's workflow ended"
AS_EXPECTED = "every transfer ended as it had to (ledger outcome and workflow status)"
RIGHT_ACCOUNTS = "every movement hit its transfer's account with its amount"
NO_LOST_TASK = "no task timed out with no fault to explain it (every transfer's history)"
# How long after a fault a timeout may still be its doing: a bank call it held up times
# out after BANK_CALL_TIMEOUT, and a workflow task it held up after 2 s (the dev
# server's default workflow task timeout, services/temporal/Dockerfile).
TIMEOUT_AFTER_FAULT = BANK_CALL_TIMEOUT.total_seconds() + 2.0


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
        Invariant(NO_LOST_TASK),
    ]


def fault_explaining(at: float, faults: Sequence[FaultRecord]) -> FaultRecord | None:
    """The fault, if any, that a timeout at ``at`` (seconds since the soak began) may
    come from: one in place then, or undone less than TIMEOUT_AFTER_FAULT before."""
    for fault in faults:
        if fault.started is None:
            continue
        times = (fault.started, fault.injected, fault.undone, fault.ended)
        over = max(t for t in times if t is not None)
        if fault.started <= at <= over + TIMEOUT_AFTER_FAULT:
            return fault
    return None


def check_timeouts(
    reference_id: str, timeouts: Iterable[float], faults: Sequence[FaultRecord]
) -> str | None:
    """A task given up on while no fault was near: a loaded but healthy worker lost it,
    which a timeout shortened for speed must never cause."""
    for at in timeouts:
        if fault_explaining(at, faults) is None:
            return f"transfer {reference_id}: a task timed out at {at:.1f} s, with no fault near"
    return None


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
