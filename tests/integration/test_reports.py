"""The soak's and the benchmark's HTML reports as a person opens them: from a file, in
headless Chromium, with no network. Rendered from the fixed results in
tests/report_samples.py; full-page screenshots go to test-artifacts/.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from crashlab.reports import bench, soak
from tests.integration.browser import WINDOW, Browser
from tests.integration.module01 import ROOT
from tests.report_samples import bench_data, soak_result

ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with Browser() as running:
        yield running


def full_page(browser: Browser, path: Path) -> None:
    """A screenshot of the whole page, not only the window."""
    height = int(browser.evaluate("document.documentElement.scrollHeight"))
    browser.send(
        "Emulation.setDeviceMetricsOverride",
        width=WINDOW[0],
        height=height,
        deviceScaleFactor=1,
        mobile=False,
    )
    try:
        browser.screenshot(path)
    finally:
        browser.send("Emulation.clearDeviceMetricsOverride")


def open_file(browser: Browser, path: Path) -> None:
    browser.goto(path.as_uri())
    # Nothing may be fetched: every resource the page loaded is the page itself.
    loaded = browser.evaluate("performance.getEntriesByType('resource').length")
    assert loaded == 0


@pytest.mark.parametrize("failing", [False, True], ids=["passed", "failed"])
def test_the_soak_report_draws_every_fault_on_the_timeline(
    browser: Browser, tmp_path: Path, failing: bool
) -> None:
    result = soak_result(failing=failing)
    page, _ = soak.write(result, tmp_path / "soak.json")
    open_file(browser, page)

    charts = browser.evaluate(
        """[...document.querySelectorAll('svg.chart')].map((svg) => ({
            bands: [...svg.querySelectorAll('g.band rect')]
                .filter((r) => r.getBoundingClientRect().width > 0).length,
            drawn: svg.getBoundingClientRect().width,
        }))"""
    )
    assert [c["bands"] for c in charts] == [len(result.faults)] * 3
    assert all(c["drawn"] > 600 for c in charts)
    rows = browser.evaluate("document.querySelectorAll('#faults tbody tr').length")
    assert rows == len(result.faults)
    verdict = browser.evaluate("document.getElementById('verdict').textContent")
    assert verdict == ("FAIL" if failing else "PASS")
    full_page(browser, ARTIFACTS / f"soak-report-{'failed' if failing else 'passed'}.png")


def test_the_bench_report_shows_each_figure_against_its_target(
    browser: Browser, tmp_path: Path
) -> None:
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(bench_data()))
    open_file(browser, bench.write(path))

    targets = browser.evaluate(
        "[...document.querySelectorAll('#figures line.target')]"
        ".map((l) => l.getAttribute('stroke'))"
    )
    # Met once (the kill recovery, on its p99); missed three times (cold start, worker
    # start, the throughput ratio): see tests/report_samples.py.
    assert sorted(targets) == ["#2a9d8f"] + ["#d62828"] * 3
    full_page(browser, ARTIFACTS / "bench-report.png")
