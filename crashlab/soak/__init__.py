"""`python -m crashlab.soak`: a chaos soak. Hundreds of transfers, a seeded schedule of faults
breaking the lab underneath them, and the bank's invariants checked all along.

While the transfers run (MoneyTransfer, started from this machine, each with its own
reference id), faults follow one another: a worker, the bank or Temporal killed and
started again, a service paused or cut off the network for a few seconds, the bank's
fault switch set to error, latency, drop_response or down, the worker's link to Temporal
or the bank slowed, made lossy or reset. Each fault is undone before
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
(crashlab.invariants, money in flight allowed). Once the faults stop and every transfer has
ended, the ledger is checked settled, and each transfer's outcome against what it had
to be. The report gives transfers by outcome, faults by kind with the recovery time
(from the fault being undone to the next transfer finishing), and every invariant's
verdict with its first violation; the same goes to a JSON file.

Exit codes: 0 every invariant held and every transfer ended as expected; 1 a violation,
a transfer not ended or not as expected, or a fault that could not be pulled; 2 bad
input or no lab to run on; 130 interrupted (the lab is put back first).

The soak is built of parts with one job each: ``plan`` (the seeded schedule and
transfers), ``traffic`` (starting and following the transfers), ``chaos`` (pulling and
undoing each fault), ``observers`` (the money watched all along, progress lines),
``settle`` and ``verdict`` (the checks at the end), ``report`` (for people and JSON), and
``run``, which assembles them.
"""

# The soak's names, importable from crashlab.soak as before it was split.
from crashlab.soak.chaos import RECOVERY_WAIT, Chaos
from crashlab.soak.cli import DEFAULT_JSON, OWN_LAB_PROJECT, PROG, config_from, main, parser
from crashlab.soak.clock import PlannedClock, Say, Timeline
from crashlab.soak.connections import Connections
from crashlab.soak.observers import MoneyWatch, Progress
from crashlab.soak.plan import (
    ACCOUNTS,
    BANK_MODE_OF_KIND,
    BANK_OPS,
    BURST_SHARE,
    EXPECTED,
    FAILING_KINDS,
    FAULT_KINDS,
    INSUFFICIENT,
    KIND_HELP,
    LEFT_OUT,
    LEVER_OF_KIND,
    MAX_AMOUNT,
    NORMAL,
    ONE_ATTEMPT_EXPECTED,
    RATES,
    UNKNOWN_SOURCE,
    UNKNOWN_SOURCE_KIND,
    UNKNOWN_TARGET,
    UNKNOWN_TARGET_KIND,
    WORKFLOW_STATUS,
    FaultSpec,
    Releases,
    Schedule,
    SoakConfig,
    SoakError,
    TransferSpec,
    make_schedule,
    parse_kinds,
    plan_releases,
    plan_transfers,
)
from crashlab.soak.records import FaultRecord, Invariant, SoakResult, TransferRecord
from crashlab.soak.report import render, summary, write_json
from crashlab.soak.run import Soak, soak
from crashlab.soak.settle import settle
from crashlab.soak.traffic import Traffic
from crashlab.soak.verdict import (
    ALL_ENDED,
    AS_EXPECTED,
    AT_END,
    CEILING_READ,
    DURING,
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    LEDGER_CHECKS,
    NO_NEGATIVE_READ,
    RIGHT_ACCOUNTS,
    check_movements,
    check_outcome,
    exit_code,
    fresh_invariants,
    measure_recoveries,
    problems,
    recovery_after,
)

__all__ = [
    "ACCOUNTS",
    "ALL_ENDED",
    "AS_EXPECTED",
    "AT_END",
    "BANK_MODE_OF_KIND",
    "BANK_OPS",
    "BURST_SHARE",
    "CEILING_READ",
    "DEFAULT_JSON",
    "DURING",
    "EXIT_BAD_INPUT",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXPECTED",
    "FAILING_KINDS",
    "FAULT_KINDS",
    "INSUFFICIENT",
    "KIND_HELP",
    "LEDGER_CHECKS",
    "LEFT_OUT",
    "LEVER_OF_KIND",
    "MAX_AMOUNT",
    "NORMAL",
    "NO_NEGATIVE_READ",
    "ONE_ATTEMPT_EXPECTED",
    "OWN_LAB_PROJECT",
    "PROG",
    "RATES",
    "RECOVERY_WAIT",
    "RIGHT_ACCOUNTS",
    "UNKNOWN_SOURCE",
    "UNKNOWN_SOURCE_KIND",
    "UNKNOWN_TARGET",
    "UNKNOWN_TARGET_KIND",
    "WORKFLOW_STATUS",
    "Chaos",
    "Connections",
    "FaultRecord",
    "FaultSpec",
    "Invariant",
    "MoneyWatch",
    "PlannedClock",
    "Progress",
    "Releases",
    "Say",
    "Schedule",
    "Soak",
    "SoakConfig",
    "SoakError",
    "SoakResult",
    "Timeline",
    "Traffic",
    "TransferRecord",
    "TransferSpec",
    "check_movements",
    "check_outcome",
    "config_from",
    "exit_code",
    "fresh_invariants",
    "main",
    "make_schedule",
    "measure_recoveries",
    "parse_kinds",
    "parser",
    "plan_releases",
    "plan_transfers",
    "problems",
    "recovery_after",
    "render",
    "settle",
    "soak",
    "summary",
    "write_json",
]
