"""The soak's reports for people and for CI: build/soak.html and build/soak.junit.xml.

The HTML page is one file with its style and charts inline (it opens with no network):
the verdict, a timeline with every fault as a shaded band over the transfers ending
each second, the money in the bank and the ledger checks, then the invariants and each
fault's recovery. The JUnit file has one test case per invariant and one per fault.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections import Counter
from html import escape
from pathlib import Path
from typing import Any

from crashlab.reports.svg import Band, Chart, Series, legend, page, render, table
from crashlab.soak.plan import LEVER_OF_KIND
from crashlab.soak.records import FaultRecord, SoakResult
from crashlab.soak.report import summary

# A colour per family of faults, so a reader tells a crash from a slow link at a glance.
FAMILY_COLORS = {
    "Kill": ("#e76f51", "a service killed"),
    "Pause": ("#8ecae6", "paused"),
    "Disconnect": ("#219ebc", "cut off the network"),
    "BankFault": ("#f4a261", "the bank's fault switch"),
    "LinkFault": ("#b5838d", "a link slowed, lossy or reset"),
}
ENDED_OK, ENDED_FAILED, IN_FLIGHT = "#2a9d8f", "#d62828", "#264653"


def fault_window(record: FaultRecord, end_of_run: float) -> tuple[float, float] | None:
    """When a fault was on: struck to undone (to the end, if it never was); None: never struck."""
    if record.started is None:
        return None
    start = record.injected if record.injected is not None else record.started
    end = record.undone if record.undone is not None else max(end_of_run, start)
    return start, end


def fault_bands(result: SoakResult) -> list[Band]:
    bands = []
    for record in result.faults:
        window = fault_window(record, result.seconds)
        if window is None:
            continue
        spec = record.spec
        color, _ = FAMILY_COLORS.get(LEVER_OF_KIND[spec.kind].__name__, ("#adb5bd", ""))
        recovery = (
            f"; the next transfer ended {record.recovery:.2f} s after the undo"
            if record.recovery is not None
            else ""
        )
        bands.append(
            Band(
                window[0],
                window[1],
                str(spec.number),
                f"fault {spec.number} ({spec.kind}), {window[0]:.1f}-{window[1]:.1f} s: "
                f"{spec.describe()}{recovery}"
                + (f"; ERROR {record.error}" if record.error else ""),
                color,
            )
        )
    return bands


def ended_per_second(result: SoakResult) -> tuple[list[tuple[float, float]], ...]:
    """(every transfer ending, the failed ones among them, transfers in flight) per second."""
    ended: Counter[int] = Counter()
    failed: Counter[int] = Counter()
    started: Counter[int] = Counter()
    for t in result.transfers:
        if t.started is not None:
            started[math.floor(t.started)] += 1
        if t.ended is not None and t.finished:
            second = math.floor(t.ended)
            ended[second] += 1
            if t.status != "completed":
                failed[second] += 1
    length = math.ceil(result.seconds) + 1
    in_flight, running = [], 0
    for second in range(length):
        running += started[second] - ended[second]
        in_flight.append((second + 0.5, float(running)))
    return (
        [(float(s), float(n)) for s, n in sorted(ended.items())],
        [(float(s), float(n)) for s, n in sorted(failed.items())],
        in_flight,
    )


def timeline_charts(result: SoakResult) -> str:
    """The three charts on one time axis, each with the fault bands."""
    x_max = max(result.seconds, 1.0)
    bands = fault_bands(result)
    ended, failed, in_flight = ended_per_second(result)
    transfers = [
        Series("transfers ending", ended, ENDED_OK, "bars"),
        Series(
            "of which failed (compensated or rejected, as planned or not)",
            failed,
            ENDED_FAILED,
            "bars",
        ),
        Series("transfers in flight", in_flight, IN_FLIGHT),
    ]
    money_points = [(t, float(total)) for t, total in result.trace.money]
    # Read twice a second: a hole of more than 2 s is the bank not answering.
    money = [Series("money in all the accounts ($)", money_points, "#1d3557", max_gap=2.0)]
    totals = [total for _, total in money_points]
    low = min(totals) if totals else 0.0
    high = max(totals) if totals else 1.0
    checks = [
        Series(
            "ledger check: every invariant held",
            [(t, 0.5) for t, v in result.trace.checks if not v],
            ENDED_OK,
            "dots",
        ),
        Series(
            "ledger check: a violation",
            [(t, 0.5) for t, v in result.trace.checks if v],
            ENDED_FAILED,
            "dots",
        ),
    ]
    families = sorted(
        {LEVER_OF_KIND[f.spec.kind].__name__ for f in result.faults if f.started is not None}
    )
    keys = "".join(
        f'<span><i style="background:{FAMILY_COLORS[name][0]};opacity:.5"></i>'
        f"{escape(FAMILY_COLORS[name][1])}</span>"
        for name in families
        if name in FAMILY_COLORS
    )
    return "".join(
        [
            f'<div class="legend">Faults, numbered as in the table below: {keys}</div>',
            render(Chart("Transfers ending each second", x_max, transfers, bands, "per second")),
            legend(transfers),
            render(
                Chart(
                    "Money in the bank (the sum of every balance, read twice a second)",
                    x_max,
                    money,
                    bands,
                    "dollars",
                    y_min=max(0.0, low - (high - low) * 0.2 - 1),
                )
            ),
            legend(money),
            render(
                Chart(
                    "Ledger checks while the faults ran",
                    x_max,
                    checks,
                    bands,
                    height=90,
                    y_min=0,
                    y_ticks=False,
                )
            ),
            legend(checks),
        ]
    )


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _cell(value: Any) -> str:
    return f'<td class="num">{escape(str(value))}</td>'


def faults_table(result: SoakResult) -> str:
    rows = []
    for f in result.faults:
        bad = ' class="bad"' if f.error else ""
        rows.append(
            f"<tr{bad}>"
            + _cell(f.spec.number)
            + f"<td>{escape(f.spec.kind)}</td><td>{escape(f.spec.describe())}"
            + (f"<br><b>ERROR</b> {escape(f.error)}" if f.error else "")
            + "</td>"
            + _cell(_seconds(f.started))
            + _cell(_seconds(f.undone))
            + _cell(_seconds(f.ended))
            + _cell(_seconds(f.recovery))
            + _cell(f.in_flight)
            + "</tr>"
        )
    columns = ["#", "kind", "what", "struck", "undone", "all healthy", "recovery", "in flight"]
    return table("faults", columns, rows, numeric=(0, 3, 4, 5, 6, 7))


def recovery_table(data: dict[str, Any]) -> str:
    rows = [
        f"<tr><td>{escape(kind)}</td>{_cell(r['faults'])}{_cell(_seconds(r['median']))}"
        f"{_cell(_seconds(r['worst']))}{_cell(r['measured'])}</tr>"
        for kind, r in data["recovery_seconds"].items()
    ]
    columns = ["kind", "faults", "median recovery", "worst", "measured"]
    return table("recovery", columns, rows, numeric=(1, 2, 3, 4))


def invariants_table(result: SoakResult) -> str:
    rows = []
    for inv in result.invariants:
        bad = ' class="bad"' if inv.violations else ""
        rows.append(
            f"<tr{bad}><td>{escape(inv.verdict)}</td><td>{escape(inv.name)}</td>"
            f"{_cell(inv.checks)}{_cell(inv.violations)}"
            f"<td>{escape(inv.first_violation or '')}</td></tr>"
        )
    columns = ["verdict", "invariant", "checks", "violations", "first violation"]
    return table("invariants", columns, rows, numeric=(2, 3))


def html(result: SoakResult) -> str:
    """The whole report page."""
    data = summary(result)
    verdict = data["verdict"]
    css = {"pass": "pass", "fail": "fail"}.get(verdict, "other")
    t, f = data["transfers"], data["faults"]
    checks = sum(inv.checks for inv in result.invariants)
    outcomes = ", ".join(f"{n} {k}" for k, n in sorted(t["by_outcome"].items()))
    head = (
        f'<h1>Chaos soak <span class="verdict {css}" id="verdict">{escape(verdict.upper())}'
        f"</span></h1>"
        f'<p class="muted">Run {escape(result.run_id)} on project {escape(result.project)}, '
        f"seed {data['seed']}, started {escape(result.started_at)}, {data['minutes']} min. "
        f"Replay the same faults with <code>make soak SEED={data['seed']}</code>.</p>"
        f"<p>{t['started']} transfers ({escape(outcomes) or 'none'}) under {f['injected']} "
        f"faults; {checks:,} invariant checks, "
        + (
            "every one held."
            if verdict == "pass"
            else f"problems: {escape('; '.join(data['problems']))}"
        )
        + "</p>"
    )
    body = [
        head,
        "<h2>Timeline</h2>",
        '<p class="muted">Each shaded band is a fault, from the moment it struck to the '
        "moment it was undone (hover for what it was). A stall shows as the transfers ending "
        "dropping to nothing while the ones in flight pile up; the recovery as the burst that "
        "follows the band.</p>",
        timeline_charts(result),
        "<h2>Invariants</h2>",
        invariants_table(result),
        "<h2>Recovery by kind of fault</h2>",
        '<p class="muted">Recovery: from the fault undone to the next transfer ending.</p>',
        recovery_table(data),
        "<h2>Every fault</h2>",
        faults_table(result),
    ]
    if result.notes:
        body += ["<h2>Notes</h2><ul>", *(f"<li>{escape(n)}</li>" for n in result.notes), "</ul>"]
    return page(f"Chaos soak {result.run_id}: {verdict}", "\n".join(body))


def junit(result: SoakResult) -> str:
    """One test case per invariant and per fault, in the JUnit XML that CI systems read."""
    root = ET.Element("testsuites", name="crashlab soak", time=f"{result.seconds:.1f}")
    invariants = ET.SubElement(root, "testsuite", name="soak invariants")
    for inv in result.invariants:
        case = ET.SubElement(invariants, "testcase", classname="soak.invariants", name=inv.name)
        if inv.violations:
            failure = ET.SubElement(
                case,
                "failure",
                message=f"{inv.violations} of {inv.checks} checks failed",
                type="violation",
            )
            failure.text = inv.first_violation or ""
        elif not inv.checks:
            ET.SubElement(case, "skipped", message="not checked")
        else:
            ET.SubElement(case, "system-out").text = f"held in {inv.checks} checks"
    faults = ET.SubElement(root, "testsuite", name="soak faults")
    for record in result.faults:
        spec = record.spec
        window = fault_window(record, result.seconds)
        case = ET.SubElement(
            faults,
            "testcase",
            classname=f"soak.faults.{spec.kind}",
            name=f"fault {spec.number}: {spec.describe()}",
            time=f"{window[1] - window[0]:.2f}" if window else "0",
        )
        if record.error:
            ET.SubElement(case, "failure", message=record.error, type="fault")
        elif record.started is None:
            ET.SubElement(case, "skipped", message="never struck: the soak ended first")
        else:
            ET.SubElement(case, "system-out").text = (
                f"struck at {record.started:.2f} s with {record.in_flight} transfers in flight; "
                f"recovery {_seconds(record.recovery)}"
            )
    for suite in (invariants, faults):
        cases = suite.findall("testcase")
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(sum(c.find("failure") is not None for c in cases)))
        suite.set("skipped", str(sum(c.find("skipped") is not None for c in cases)))
        suite.set("errors", "0")
    root.set("tests", str(sum(int(s.get("tests", 0)) for s in (invariants, faults))))
    root.set("failures", str(sum(int(s.get("failures", 0)) for s in (invariants, faults))))
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write(result: SoakResult, json_path: Path) -> tuple[Path, Path]:
    """Writes soak.html and soak.junit.xml beside the JSON report (build/soak.json)."""
    stem = json_path.with_suffix("")
    page_path = stem.with_name(stem.name + ".html")
    junit_path = stem.with_name(stem.name + ".junit.xml")
    page_path.parent.mkdir(parents=True, exist_ok=True)
    page_path.write_text(html(result))
    junit_path.write_text(junit(result))
    return page_path, junit_path
