"""The dashboard's pure parts (crashlab/panel/dashboard.py, chartjs.py): the bands from the
panel's timeline, the series from Prometheus's answers, Chart.js out of Debian's package.
The dashboard itself is drawn in Chromium in tests/integration/test_metrics.py."""

from __future__ import annotations

import io
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crashlab.panel import chartjs
from crashlab.panel.dashboard import PANELS, Prometheus, bands, fill, label_of, points
from crashlab.panel.state import Event
from crashlab.stack import Stack, StackError


def at(second: int) -> str:
    return datetime(2026, 12, 3, 12, 0, second, tzinfo=UTC).isoformat()


T0 = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC).timestamp()


def test_a_lever_is_a_band_from_pulled_to_undone() -> None:
    events = [
        Event(at(1), "pulled", "worker killed (SIGKILL)"),
        Event(at(3), "on", "bank paused"),
        Event(at(5), "refused", "kill: no such service"),
        Event(at(9), "undone", "worker killed (SIGKILL)"),
        Event(at(12), "pulled", "worker killed (SIGKILL)"),
    ]
    shown = bands(events, now=T0 + 20)
    assert [(b["label"], b["start"] - T0, b["end"] - T0, b["on"]) for b in shown] == [
        ("worker killed (SIGKILL)", 1, 9, False),
        ("bank paused", 3, 20, True),  # still on: up to now
        ("worker killed (SIGKILL)", 12, 20, True),
    ]


def test_an_undo_without_a_pull_draws_nothing() -> None:
    assert bands([Event(at(4), "off", "bank paused")], now=T0 + 10) == []


def test_no_sample_while_prometheus_scraped_is_zero() -> None:
    series = points([[10, "1.5"], [14, "NaN"]])
    assert series == [(10.0, 1.5), (14.0, None)]  # NaN: a gap, not a zero
    assert fill(series, [10.0, 12.0, 14.0]) == [(10.0, 1.5), (12.0, 0.0), (14.0, None)]
    # Where no sample means "not known" (the money while the bank is down): a gap.
    assert fill(series, [10.0, 12.0], missing=None) == [(10.0, 1.5), (12.0, None)]


def test_labels_come_from_the_series() -> None:
    assert label_of("retry: {activity_type}", {"activity_type": "deposit"}) == "retry: deposit"


def test_every_panel_the_issue_asks_for() -> None:
    assert [p.id for p in PANELS] == ["transfers", "retries", "schedule", "pollers", "money"]
    assert all(p.hint for p in PANELS)


class NoPrometheus(Stack):
    def published(self, service: str, port: int) -> str:
        raise StackError(f"The {service} service publishes no port {port}")


def test_without_prometheus_the_dashboard_says_how_to_start_it() -> None:
    shown = Prometheus(NoPrometheus(project="p")).panels()
    assert "make up OBSERVE=1" in shown["error"]


def deb(files: dict[str, bytes]) -> bytes:
    """A .deb as dpkg builds one: an ar archive with a data.tar.xz."""
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w:xz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out = b"!<arch>\n"
    for name, data in (("debian-binary", b"2.0\n"), ("data.tar.xz", payload.getvalue())):
        header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n"
        out += header.encode() + data + (b"\n" if len(data) % 2 else b"")
    return out


def test_chart_js_comes_out_of_the_package() -> None:
    package = deb({chartjs.MEMBER: b"/*! Chart.js */", "./usr/share/doc/x": b"doc"})
    assert chartjs.extract(package) == b"/*! Chart.js */"
    with pytest.raises(ValueError, match="not an ar archive"):
        chartjs.extract(b"<html>")


def test_chart_js_already_there_is_not_downloaded_again(tmp_path: Path) -> None:
    kept = tmp_path / "chart.min.js"
    kept.write_text("kept")
    assert chartjs.ensure(kept) == kept and kept.read_text() == "kept"
