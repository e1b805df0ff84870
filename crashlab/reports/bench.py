"""The benchmark's report for people: build/bench.html, from build/bench.json.

Each figure is drawn as its spread (min to max over the runs) with the median marked,
against its target where it has one. One file, style and drawings inline.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from crashlab.reports.svg import number, page, table


@dataclass(frozen=True)
class Target:
    value: float
    at_most: bool  # True: the figure must stay at or below it; False: reach it
    stat: str  # the statistic it judges: median or p99
    text: str


def target_of(row: dict[str, Any]) -> Target | None:
    """The target `make bench` measured the figure against (crashlab/bench.py), if any."""
    if row.get("target") is None:
        return None
    at_most = not row.get("at_least", False)
    stat = row.get("stat", "median")
    text = f"{stat} {'<=' if at_most else '>='} {row['target']:g}"
    return Target(float(row["target"]), at_most, stat, text)


BAR_W, BAR_H = 320, 22


def figures(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The figures measured, with the derived ones (ratios, memory at rest) added."""
    rows = [dict(f) for f in data.get("figures", []) if f.get("median") is not None]
    by_name = {f["name"]: f for f in rows}
    levels = {
        m.group(1) for n in by_name if (m := re.match(r"throughput at concurrency (\d+),", n))
    }
    for level in sorted(levels, key=int):
        if any(n.startswith(f"throughput ratio at concurrency {level}:") for n in by_name):
            continue  # measured run by run, with its target
        full = by_name.get(f"throughput at concurrency {level}, full stack")
        base = by_name.get(f"throughput at concurrency {level}, tutorial's design")
        if full and base and base["median"]:
            ratio = full["median"] / base["median"]
            rows.append(
                {
                    "name": f"ratio full stack / tutorial's design, concurrency {level}",
                    "unit": "",
                    "median": ratio,
                    "min": ratio,
                    "max": ratio,
                    "runs": full["runs"],
                    "note": "of the medians",
                }
            )
    at_rest = data.get("memory at rest (MiB)", {})
    if "whole lab" in at_rest:
        rows.append(
            {
                "name": "memory at rest, whole lab",
                "unit": "MiB",
                "median": at_rest["whole lab"],
                "min": at_rest["whole lab"],
                "max": at_rest["whole lab"],
                "runs": 1,
                "note": "5 s after a cold start",
            }
        )
    return rows


def met(row: dict[str, Any], target: Target) -> bool:
    value = row.get(target.stat, row["median"])
    return bool(value <= target.value if target.at_most else value >= target.value)


def spread_svg(row: dict[str, Any], target: Target | None) -> str:
    """Min to max as a bar, the median as a tick, the target as a dashed line."""
    top = max(row["max"], target.value if target else 0.0) * 1.15 or 1.0

    def x(v: float) -> float:
        return 4 + v / top * (BAR_W - 8)

    parts = [
        f'<svg class="spread" width="{BAR_W}" height="{BAR_H}" viewBox="0 0 {BAR_W} {BAR_H}" '
        'xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="4" x2="{BAR_W - 4}" y1="11" y2="11" stroke="#e3e6ea"/>',
        f'<rect x="{x(row["min"]):.1f}" y="6" width="{max(x(row["max"]) - x(row["min"]), 2):.1f}"'
        f' height="10" fill="#8ecae6"><title>min {number(row["min"])}, max '
        f"{number(row['max'])}</title></rect>",
        f'<line class="median" x1="{x(row["median"]):.1f}" x2="{x(row["median"]):.1f}" y1="3" '
        f'y2="19" stroke="#1d3557" stroke-width="2.5"><title>median {number(row["median"])}'
        "</title></line>",
    ]
    if target:
        color = "#2a9d8f" if met(row, target) else "#d62828"
        parts.append(
            f'<line class="target" x1="{x(target.value):.1f}" x2="{x(target.value):.1f}" y1="0" '
            f'y2="{BAR_H}" stroke="{color}" stroke-width="2" stroke-dasharray="3 2">'
            f"<title>target {escape(target.text)}</title></line>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _fmt(value: float) -> str:
    return f"{value:.2f}" if abs(value) < 100 else f"{value:,.0f}"


def figures_table(data: dict[str, Any]) -> str:
    rows = []
    for row in figures(data):
        target = target_of(row)
        verdict = ""
        css = ""
        if target:
            ok = met(row, target)
            verdict = f"{escape(target.text)}: {'met' if ok else 'missed'}"
            css = ' class="target-met"' if ok else ' class="bad target-missed"'
        spread = f"{_fmt(row['min'])}-{_fmt(row['max'])}" if row["min"] != row["max"] else "-"
        rows.append(
            f"<tr{css}><td>{escape(row['name'])}"
            + (f'<br><span class="muted">{escape(row["note"])}</span>' if row.get("note") else "")
            + f'</td><td class="num">{_fmt(row["median"])} {escape(row["unit"])}</td>'
            f'<td class="num">{spread}</td><td class="num">{row["runs"]}</td>'
            f"<td>{verdict}</td><td>{spread_svg(row, target)}</td></tr>"
        )
    columns = ["figure", "median", "min-max", "runs", "target", "spread, median, target"]
    return table("figures", columns, rows, numeric=(1, 2, 3))


def extras(data: dict[str, Any]) -> str:
    out = []
    for title, values in data.items():
        if title in ("when", "runs", "figures") or not isinstance(values, dict):
            continue
        rows = "".join(
            f'<tr><td>{escape(str(k))}</td><td class="num">{float(v):,.1f}</td></tr>'
            for k, v in sorted(values.items())
        )
        out.append(f"<h2>{escape(title)}</h2><table><tbody>{rows}</tbody></table>")
    return "".join(out)


def html(data: dict[str, Any]) -> str:
    rows = figures(data)
    judged = [(r, t) for r in rows if (t := target_of(r))]
    missed = [r["name"] for r, t in judged if not met(r, t)]
    summary = (
        f"{len(judged) - len(missed)} of {len(judged)} targets met"
        + (f"; missed: {', '.join(missed)}" if missed else "")
        + "."
    )
    body = (
        "<h1>Benchmark</h1>"
        f'<p class="muted">Measured {escape(str(data.get("when", "")))}, each figure the '
        f"median of {data.get('runs', '?')} runs with its min and max. "
        "<code>make bench</code> reports; it never fails on a slow figure.</p>"
        f'<p id="summary">{escape(summary)}</p>'
        f"{figures_table(data)}{extras(data)}"
    )
    return page("Benchmark", body)


def write(json_path: Path) -> Path:
    """build/bench.html beside build/bench.json."""
    out = json_path.with_suffix(".html")
    out.write_text(html(json.loads(json_path.read_text())))
    return out
