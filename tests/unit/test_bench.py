"""The benchmark's verdicts: each figure against its target, on the statistic it names."""

from __future__ import annotations

from crashlab.bench import Bench, Figure, report


def test_a_recovery_target_is_judged_on_p99_not_the_median() -> None:
    fig = Figure("recovery", "s", samples=[0.5] * 19 + [3.0], target=1.0, stat="p99")
    assert fig.row()["median"] == 0.5
    assert fig.verdict() == "p99 <= 1: MISSED"
    fig.samples[-1] = 0.9
    assert fig.verdict() == "p99 <= 1: met"


def test_a_rate_target_is_a_floor() -> None:
    assert Figure("ratio", "x", [0.8, 0.9], target=1.0, at_least=True).verdict().endswith("MISSED")
    assert Figure("ratio", "x", [1.1, 1.0], target=1.0, at_least=True).verdict() == (
        "median >= 1: met"
    )


def test_the_report_names_every_missed_target() -> None:
    bench = Bench(runs=1)
    bench.figure("cold start", "s", target=3.0).samples.append(4.4)
    bench.figure("worker start", "s", target=1.0).samples.append(0.8)
    bench.figure("no target", "s").samples.append(7.0)
    text = report(bench)
    assert "median <= 3: MISSED" in text and "median <= 1: met" in text
    assert text.splitlines()[-1] == "Targets missed: 1 (cold start)"


def test_the_report_shows_where_the_slowest_kill_s_time_went() -> None:
    bench = Bench(runs=1)
    bench.slow_kills += [
        {"service": "temporal", "recovery_s": 2.5, "history": "+0.10 workflow_task_started"},
        {"service": "temporal", "recovery_s": 4.0, "history": "+2.00 workflow_task_timed_out"},
    ]
    lines = report(bench).splitlines()
    heading = lines.index(
        "The slowest temporal kill's last transfer (4.00 s), its history in seconds from "
        "the service healthy:"
    )
    assert lines[heading + 1] == "  +2.00 workflow_task_timed_out"
    assert not any("worker kill's" in line for line in lines)
