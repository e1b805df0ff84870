"""The reports with pictures (crashlab.reports), on fixed results: the soak's page and JUnit
file, the benchmark's page. The pages are rendered in Chromium in
tests/integration/test_reports.py."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from crashlab.reports import bench, soak, svg
from tests.report_samples import bench_data, soak_result


def test_the_soak_page_has_a_band_for_every_fault_on_each_chart() -> None:
    page = soak.html(soak_result())
    assert page.count('<g class="band">') == 5 * 3  # five faults, three charts
    for n in range(1, 6):
        assert f'class="band-label">{n}</text>' in page
    assert 'id="verdict">PASS<' in page
    assert "every one held" in page


def test_the_soak_page_needs_no_network() -> None:
    page = soak.html(soak_result())
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "<script" not in page


def test_the_soak_page_shows_the_stall_and_the_money() -> None:
    result = soak_result()
    ended, failed, in_flight = soak.ended_per_second(result)
    kill = next(f for f in result.faults if f.spec.kind == "bank-kill")
    assert kill.started is not None and kill.undone is not None
    during = [n for s, n in ended if kill.started + 1 <= s < kill.undone - 1]
    assert not any(during), "no transfer ends while the bank is down"
    assert sum(n for _, n in ended) == 200 and sum(n for _, n in failed) == 40
    piled_up = max(n for s, n in in_flight if kill.started <= s <= kill.undone + 1)
    assert piled_up > max(n for s, n in in_flight if s < kill.started)
    assert 'data-label="money in all the accounts ($)"' in soak.html(result)


def test_the_soak_page_of_a_failed_run_says_what_failed() -> None:
    page = soak.html(soak_result(failing=True))
    assert 'id="verdict">FAIL<' in page
    assert "withdrew twice" in page and "did not answer" in page
    assert page.count('<tr class="bad">') == 2  # the invariant and the fault


def test_the_junit_file_has_a_case_per_invariant_and_per_fault() -> None:
    result = soak_result(failing=True)
    root = ET.fromstring(soak.junit(result))
    cases = root.findall(".//testcase")
    assert len(cases) == len(result.invariants) + len(result.faults)
    names = {c.get("name") for c in cases}
    assert {inv.name for inv in result.invariants} <= names
    failed = [c for c in cases if c.find("failure") is not None]
    kind = result.faults[3].spec.kind
    assert [c.get("classname") for c in failed] == ["soak.invariants", f"soak.faults.{kind}"]
    assert "withdrew twice" in (failed[0].find("failure").text or "")  # type: ignore[union-attr]
    assert root.get("tests") == str(len(cases)) and root.get("failures") == "2"


def test_a_clean_soak_gives_a_junit_file_with_no_failures(tmp_path: Path) -> None:
    page, junit = soak.write(soak_result(), tmp_path / "soak.json")
    assert page.name == "soak.html" and junit.name == "soak.junit.xml"
    root = ET.parse(junit).getroot()
    assert root.get("failures") == "0"
    assert all(s.get("skipped") == "0" for s in root.findall("testsuite"))


def test_the_bench_page_puts_each_figure_against_its_target(tmp_path: Path) -> None:
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(bench_data()))
    page = bench.write(path).read_text()
    # Met: the kill recovery (judged on its p99). Missed: cold start, worker start, and the
    # throughput ratio at concurrency 50.
    assert page.count('class="target-met"') == 1
    assert page.count("target-missed") == 3
    assert "p99 &lt;= 1: met" in page and "median &gt;= 1: missed" in page
    assert "ratio full stack / tutorial&#x27;s design, concurrency 10" in page  # derived
    assert "1 of 4 targets met" in page
    assert page.count('<svg class="spread"') == len(bench.figures(bench_data()))
    assert "<script" not in page


def test_a_line_breaks_where_nothing_was_measured() -> None:
    points = [(0.0, 1.0), (0.5, 1.0), (4.0, 2.0), (4.5, 2.0)]
    assert svg.segments(points, 2.0) == [points[:2], points[2:]]
    assert svg.segments(points, None) == [points]
    result = soak_result()
    result.trace.money = [(t, m) for t, m in result.trace.money if not 30 <= t <= 40]
    money = soak.html(result).split('data-label="money in all the accounts ($)"')
    assert len(money) == 3  # two runs: before and after the hole


def test_ticks_are_round_numbers() -> None:
    assert svg.ticks(0, 120, 10) == [0, 20, 40, 60, 80, 100, 120]
    assert svg.ticks(15_900, 16_000, 4) == [15_900, 15_925, 15_950, 15_975, 16_000]
    assert svg.ticks(3, 3) == [3]
