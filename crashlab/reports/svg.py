"""A tiny SVG chart for the reports: lines, bars and shaded bands on one time axis.

Pure functions from numbers to markup, so a report is one file that opens with no
network and no script. Hovering a band or a point shows its <title>.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from html import escape

WIDTH, HEIGHT = 960, 200
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 22, 26


@dataclass(frozen=True)
class Series:
    """Points (x, y) drawn as a line, bars (one per x, one unit wide) or dots."""

    label: str
    points: Sequence[tuple[float, float]]
    color: str
    style: str = "line"  # line, bars, dots
    dashed: bool = False
    max_gap: float | None = None  # a line breaks where points are further apart than this


@dataclass(frozen=True)
class Band:
    """A shaded stretch of the x axis: a fault from when it struck to when it was undone."""

    start: float
    end: float
    label: str  # short, written at the top of the band
    title: str  # the hover text
    color: str = "#f4a261"
    css_class: str = "band"


@dataclass
class Chart:
    title: str
    x_max: float
    series: list[Series] = field(default_factory=list)
    bands: list[Band] = field(default_factory=list)
    y_label: str = ""
    x_label: str = "seconds since the start"
    y_min: float | None = None  # None: from the data (0 when it is all positive)
    height: int = HEIGHT
    y_ticks: bool = True


def ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round numbers from low to high, about ``count`` of them."""
    if high <= low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    out = []
    value = first
    while value <= high + step * 1e-9:
        out.append(round(value, 10))
        value += step
    return out


def number(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:g}"


def segments(
    points: Sequence[tuple[float, float]], max_gap: float | None
) -> list[list[tuple[float, float]]]:
    """The points in runs, a new run where two are more than ``max_gap`` apart: a line
    with a hole where nothing was measured, not one drawn straight across it."""
    runs: list[list[tuple[float, float]]] = []
    for point in points:
        if not runs or (max_gap is not None and point[0] - runs[-1][-1][0] > max_gap):
            runs.append([])
        runs[-1].append(point)
    return runs


def render(chart: Chart) -> str:
    """The chart as an inline <svg> element."""
    w, h = WIDTH, chart.height
    plot_w, plot_h = w - LEFT - RIGHT, h - TOP - BOTTOM
    ys = [y for s in chart.series for _, y in s.points]
    y_low = chart.y_min if chart.y_min is not None else min([0.0, *ys])
    y_high = max([y_low + 1, *ys])
    if any(s.style == "line" for s in chart.series) and chart.y_min is not None:
        y_high += (y_high - y_low) * 0.05
    x_max = max(chart.x_max, 1e-9)

    def x(v: float) -> float:
        return LEFT + max(0.0, min(v, x_max)) / x_max * plot_w

    def y(v: float) -> float:
        return TOP + plot_h - (v - y_low) / (y_high - y_low) * plot_h

    out = [
        f'<svg class="chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
        f'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(chart.title)}">',
        f'<text x="{LEFT}" y="14" class="chart-title">{escape(chart.title)}</text>',
    ]
    for band in chart.bands:
        x0, x1 = x(band.start), x(max(band.end, band.start))
        out.append(
            f'<g class="{band.css_class}"><rect x="{x0:.1f}" y="{TOP}" '
            f'width="{max(x1 - x0, 1.5):.1f}" height="{plot_h}" fill="{band.color}" '
            f'fill-opacity="0.28"><title>{escape(band.title)}</title></rect>'
            f'<text x="{x0 + 2:.1f}" y="{TOP + 10}" class="band-label">'
            f"{escape(band.label)}</text></g>"
        )
    for value in ticks(y_low, y_high, 4) if chart.y_ticks else []:
        out.append(
            f'<line x1="{LEFT}" x2="{w - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
            f'class="grid"/><text x="{LEFT - 6}" y="{y(value) + 4:.1f}" class="tick" '
            f'text-anchor="end">{number(value)}</text>'
        )
    for value in ticks(0, x_max, 10):
        out.append(
            f'<text x="{x(value):.1f}" y="{h - BOTTOM + 14}" class="tick" '
            f'text-anchor="middle">{number(value)}</text>'
        )
    out.append(
        f'<text x="{w - RIGHT}" y="{h - 2}" class="axis-label" text-anchor="end">'
        f"{escape(chart.x_label)}</text>"
    )
    if chart.y_label:
        out.append(
            f'<text x="12" y="{TOP + plot_h / 2:.1f}" class="axis-label" text-anchor="middle" '
            f'transform="rotate(-90 12 {TOP + plot_h / 2:.1f})">{escape(chart.y_label)}</text>'
        )
    bar_w = max(1.0, plot_w / x_max * 0.8)
    for s in chart.series:
        label = escape(s.label)
        if s.style == "bars":
            bars = "".join(
                f'<rect x="{x(px):.1f}" y="{y(py):.1f}" width="{bar_w:.1f}" '
                f'height="{y(y_low) - y(py):.1f}"><title>{number(px)} s: {number(py)} '
                f"{label}</title></rect>"
                for px, py in s.points
                if py
            )
            out.append(f'<g class="series bars" fill="{s.color}" data-label="{label}">{bars}</g>')
        elif s.style == "dots":
            dots = "".join(
                f'<circle cx="{x(px):.1f}" cy="{y(py):.1f}" r="3">'
                f"<title>{number(px)} s: {label}</title></circle>"
                for px, py in s.points
            )
            out.append(f'<g class="series dots" fill="{s.color}" data-label="{label}">{dots}</g>')
        elif s.points:
            dash = ' stroke-dasharray="5 4"' if s.dashed else ""
            for run in segments(s.points, s.max_gap):
                path = " ".join(f"{x(px):.1f},{y(py):.1f}" for px, py in run)
                out.append(
                    f'<polyline class="series line" data-label="{label}" points="{path}" '
                    f'fill="none" stroke="{s.color}" stroke-width="1.6"{dash}/>'
                )
    out.append(
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" class="frame"/>'
    )
    out.append("</svg>")
    return "".join(out)


def legend(series: Sequence[Series], bands: str = "") -> str:
    items = [f'<span><i style="background:{s.color}"></i>{escape(s.label)}</span>' for s in series]
    if bands:
        items.append(f'<span><i class="band-key"></i>{escape(bands)}</span>')
    return f'<div class="legend">{"".join(items)}</div>'


# The reports' shared look, inlined into each page.
STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1000px;
       color: #1d2430; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.verdict { display: inline-block; padding: 2px 10px; border-radius: 4px; color: #fff;
           font-weight: 600; }
.pass { background: #2a9d8f; } .fail { background: #d62828; } .other { background: #6c757d; }
.muted { color: #5c6675; }
table { border-collapse: collapse; width: 100%; margin: 6px 0; }
th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid #e3e6ea;
         vertical-align: top; }
th { font-weight: 600; background: #f5f6f8; } td.num, th.num { text-align: right;
         font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.bad td { background: #fde8e8; }
svg.chart { display: block; margin: 4px 0; max-width: 100%; height: auto; }
svg .chart-title { font-weight: 600; font-size: 13px; fill: #1d2430; }
svg .tick, svg .axis-label { font-size: 11px; fill: #5c6675; }
svg .band-label { font-size: 10px; fill: #8a4b12; }
svg .grid { stroke: #eceff2; } svg .frame { stroke: #c9ced6; }
.legend { font-size: 12px; color: #5c6675; margin: 0 0 10px 56px; }
.legend span { margin-right: 16px; white-space: nowrap; }
.legend i { display: inline-block; width: 14px; height: 10px; margin-right: 5px;
            vertical-align: baseline; }
.legend i.band-key { background: #f4a261; opacity: 0.5; }
"""


def table(
    table_id: str, columns: Sequence[str], rows: Sequence[str], numeric: Collection[int] = ()
) -> str:
    """A table whose columns at the ``numeric`` indexes hold numbers (aligned right)."""
    cells = "".join(
        f'<th class="num">{escape(c)}</th>' if i in numeric else f"<th>{escape(c)}</th>"
        for i, c in enumerate(columns)
    )
    return (
        f'<table id="{table_id}"><thead><tr>{cells}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def page(title: str, body: str) -> str:
    """A whole HTML document: the style inlined, nothing fetched."""
    return (
        "<!doctype html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n"
    )
