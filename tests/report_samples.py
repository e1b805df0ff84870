"""Fixed results for the report tests: a soak and a benchmark as they could have run,
built from a seed so every test (and every screenshot) sees the same ones."""

from __future__ import annotations

import random
from typing import Any

from crashlab.bench import Figure
from crashlab.invariants import COMPENSATED, COMPLETED, REJECTED
from crashlab.soak import (
    INSUFFICIENT,
    NORMAL,
    UNKNOWN_TARGET_KIND,
    FaultRecord,
    SoakConfig,
    SoakResult,
    TransferRecord,
    TransferSpec,
    fresh_invariants,
)

SOAK_SECONDS = 120.0
KINDS = ("worker-kill", "bank-kill", "pause", "bank-drop", "link-delay")


def soak_result(*, failing: bool = False) -> SoakResult:
    """A two-minute soak: five faults, 200 transfers that stall while the bank is down."""
    rng = random.Random(15)
    config = SoakConfig(transfers=200, seed=15, kinds=KINDS, fault_count=len(KINDS))
    result = SoakResult(
        project="crashlab-soak-lab",
        config=config,
        run_id="f00d15",
        started_at="2026-12-03T12:00:00+00:00",
        seconds=SOAK_SECONDS,
    )
    windows = [(10.0, 14.0), (30.0, 35.0), (52.0, 56.0), (70.0, 73.0), (88.0, 94.0)]
    for fault, (start, end) in zip(config.schedule().faults, windows, strict=True):
        result.faults.append(
            FaultRecord(
                fault,
                started=start,
                injected=start + 0.3,
                undone=end,
                ended=end + 1.0,
                recovery=round(rng.uniform(0.1, 2.5), 2),
                in_flight=rng.randint(3, 15),
            )
        )
    stalled = next(f for f in result.faults if f.spec.kind == "bank-kill")
    kinds = [(NORMAL, (COMPLETED,))] * 8 + [
        (UNKNOWN_TARGET_KIND, (COMPENSATED,)),
        (INSUFFICIENT, (REJECTED,)),
    ]
    for n in range(200):
        kind, expected = kinds[n % len(kinds)]
        spec = TransferSpec(n + 1, f"soak-t-{n:04d}", kind, "10-001", "10-002", 5, 0, expected)
        started = rng.uniform(1, SOAK_SECONDS - 15)
        ended = started + rng.uniform(0.1, 2.0)
        assert stalled.started is not None and stalled.undone is not None
        if stalled.started <= ended <= stalled.undone:
            ended = stalled.undone + rng.uniform(0.2, 3.0)  # held up until the bank is back
        status = "completed" if expected == (COMPLETED,) else "failed"
        result.transfers.append(TransferRecord(spec, started, ended, status, expected[0]))
    money = 16_000
    assert stalled.started is not None and stalled.undone is not None
    for i in range(int(SOAK_SECONDS * 2)):
        t = i / 2
        # Money on its way between accounts; withdrawn money waits while the bank is down.
        in_flight = 5 * rng.randint(0, 3) if not stalled.started <= t <= stalled.undone else 40
        result.trace.money.append((t, money - in_flight))
        if i % 10 == 0:
            result.trace.checks.append((t, 1 if failing and t == 60 else 0))
    result.invariants = fresh_invariants()
    for inv in result.invariants:
        for _ in range(24):
            inv.record(None)
    if failing:
        result.invariants[2].record("at 60.0 s: reference soak-t-0042 withdrew twice")
        result.faults[3].error = "the bank's switch did not answer"
    result.peak_in_flight = 20
    return result


def bench_data() -> dict[str, Any]:
    """build/bench.json as `make bench RUNS=3` could have written it: its rows are the
    bench's own (crashlab.bench.Figure), targets included."""

    def figure(name: str, unit: str, samples: list[float], **target: Any) -> dict[str, Any]:
        return Figure(name, unit, samples, **target).row()

    return {
        "when": "2026-12-03T12:00:00+00:00",
        "runs": 3,
        "figures": [
            figure("cold start: `up` to every service healthy", "s", [4.1, 4.4, 4.6], target=3.0),
            figure("worker start: `docker start` to healthy", "s", [2.4, 2.9, 3.9], target=1.0),
            figure(
                "random-moment worker kill: healthy to every in-flight transfer complete",
                "s",
                [0.5, 0.8, 0.9],
                target=1.0,
                stat="p99",
            ),
            figure(
                "recovery (sdk-defaults): worker back to transfer complete", "s", [12.2, 12.7, 13.0]
            ),
            figure("one transfer alone, full stack", "s", [0.08, 0.09, 0.11]),
            figure("throughput at concurrency 10, full stack", "transfers/s", [14.1, 14.6, 15.0]),
            figure(
                "throughput at concurrency 10, tutorial's design", "transfers/s", [19.5, 20.1, 20.8]
            ),
            figure("throughput at concurrency 50, full stack", "transfers/s", [14.9, 15.5, 16.2]),
            figure(
                "throughput at concurrency 50, tutorial's design", "transfers/s", [18.1, 18.9, 19.6]
            ),
            figure(
                "throughput ratio at concurrency 50: full stack / tutorial's design",
                "x",
                [0.8, 0.82, 0.84],
                target=1.0,
                at_least=True,
            ),
            figure("latency p99 at concurrency 50, full stack", "s", [6.8, 7.4, 8.1]),
        ],
        "memory at rest (MiB)": {
            "crashlab-bench-temporal-1": 137.0,
            "crashlab-bench-worker-1": 64.0,
            "crashlab-bench-bank-1": 39.0,
            "whole lab": 240.0,
        },
        "image sizes (MiB)": {"crashlab/bank:latest": 392.0},
    }
