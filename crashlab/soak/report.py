"""The soak's report: a summary as data (also written as JSON) and as lines for people."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

from crashlab.soak.plan import FAULT_KINDS
from crashlab.soak.records import SoakResult
from crashlab.soak.verdict import check_outcome, problems
from crashlab.stats import percentile


def summary(result: SoakResult) -> dict[str, Any]:
    """The report as plain data (the JSON file)."""
    cfg = result.config
    transfers = result.transfers
    started = [t for t in transfers if t.started is not None]
    unexpected = [
        problem
        for t in transfers
        if t.finished and t.outcome is not None and (problem := check_outcome(t))
    ]
    injected = [f for f in result.faults if f.started is not None]
    recoveries: dict[str, dict[str, Any]] = {}
    for kind in FAULT_KINDS:
        of_kind = [f for f in injected if f.spec.kind == kind]
        if not of_kind:
            continue
        samples = [f.recovery for f in of_kind if f.recovery is not None]
        recoveries[kind] = {
            "median": round(statistics.median(samples), 2) if samples else None,
            "p99": round(percentile(samples, 99), 2) if samples else None,
            "worst": max(samples) if samples else None,
            "measured": len(samples),
            "faults": len(of_kind),
        }
    found = problems(result)
    return {
        "run_id": result.run_id,
        "project": result.project,
        "seed": cfg.seed,
        "started_at": result.started_at,
        "seconds": round(result.seconds, 1),
        "minutes": round(result.seconds / 60, 1),
        "options": {
            "transfers": cfg.transfers,
            "concurrency": cfg.concurrency,
            "workers": cfg.workers,
            "faults": list(cfg.kinds),
            "fault_count": cfg.faults,
            "hold": list(cfg.hold),
            "gap": list(cfg.gap),
            "failing": cfg.failing,
            "one_attempt": cfg.one_attempt,
            "duration": cfg.duration,
        },
        "verdict": "interrupted" if result.interrupted else ("fail" if found else "pass"),
        "problems": found,
        "transfers": {
            "planned": len(transfers),
            "started": len(started),
            "ended": sum(t.finished for t in transfers),
            "by_kind": dict(Counter(t.spec.kind for t in transfers)),
            "by_outcome": dict(Counter(t.outcome or t.status for t in started)),
            "by_status": dict(Counter(t.status for t in transfers)),
            "one_attempt": sum(t.spec.max_attempts == 1 for t in transfers),
            "peak_in_flight": result.peak_in_flight,
            "unexpected": unexpected[:20],
            "unexpected_count": len(unexpected),
        },
        "faults": {
            "planned": len(result.faults),
            "injected": len(injected),
            "by_kind": {
                k: n for k in FAULT_KINDS if (n := sum(f.spec.kind == k for f in injected))
            },
            "errors": sum(bool(f.error) for f in result.faults),
            "events": [
                {
                    **asdict(f.spec),
                    "description": f.spec.describe(),
                    "started": _round(f.started),
                    "injected": _round(f.injected),
                    "undone": _round(f.undone),
                    "ended": _round(f.ended),
                    "recovery": f.recovery,
                    "in_flight": f.in_flight,
                    "burst": f.burst,
                    "error": f.error,
                }
                for f in result.faults
            ],
        },
        "recovery_seconds": recoveries,
        "invariants": [
            {
                "name": inv.name,
                "verdict": inv.verdict,
                "checks": inv.checks,
                "violations": inv.violations,
                "first_violation": inv.first_violation,
            }
            for inv in result.invariants
        ],
        "notes": result.notes,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def render(data: dict[str, Any]) -> list[str]:
    """The report for people, from summary()."""
    t, f = data["transfers"], data["faults"]
    lines = [
        f"Soak {data['run_id']} on project {data['project']}: seed {data['seed']}, "
        f"{t['started']} transfers, {f['injected']} faults, {data['minutes']} min.",
        "",
        f"Transfers: {t['planned']} planned, {t['started']} started, {t['ended']} ended, "
        f"at most {t['peak_in_flight']} in flight at once.",
    ]
    lines.append("  by kind:    " + ", ".join(f"{n} {k}" for k, n in sorted(t["by_kind"].items())))
    lines.append(
        "  by outcome: " + ", ".join(f"{n} {k}" for k, n in sorted(t["by_outcome"].items()))
    )
    if t["unexpected_count"]:
        lines.append(f"  NOT AS EXPECTED: {t['unexpected_count']}, e.g. {t['unexpected'][0]}")
    struck = sorted(e["in_flight"] for e in f["events"] if e["started"] is not None)
    lines += [
        "",
        f"Faults: {f['injected']} of {f['planned']} injected"
        + (
            f", each meeting {struck[0]} to {struck[-1]} transfers in flight "
            f"(median {statistics.median(struck):g})."
            if struck
            else "."
        ),
    ]
    lines.append(f"  {'kind':<15} {'count':>5} {'recovery median':>16} {'p99':>8} {'worst':>8}")
    for kind, n in f["by_kind"].items():
        rec = data["recovery_seconds"].get(kind, {})
        median, p99, worst = rec.get("median"), rec.get("p99"), rec.get("worst")
        lines.append(
            f"  {kind:<15} {n:>5} {_seconds(median):>16} {_seconds(p99):>8} {_seconds(worst):>8}"
            + (
                f"  ({rec['faults'] - rec['measured']} not measured: no transfer ended "
                "between the undo and the next fault)"
                if rec and rec["measured"] < rec["faults"]
                else ""
            )
        )
    for event in f["events"]:
        if event["error"]:
            lines.append(f"  FAULT {event['number']} FAILED: {event['error']}")
    lines += ["", "Invariants:"]
    for inv in data["invariants"]:
        mark = {"held": "held    ", "violated": "VIOLATED", "not checked": "UNCHECKED"}
        lines.append(f"  {mark[inv['verdict']]} {inv['name']} ({inv['checks']} checks)")
        if inv["first_violation"]:
            more = inv["violations"] - 1
            lines.append(
                f"           first: {inv['first_violation']}" + (f" (+{more} more)" if more else "")
            )
    if data["notes"]:
        lines += ["", "Notes:", *(f"  {note}" for note in data["notes"])]
    lines.append("")
    if data["verdict"] == "pass":
        lines.append(
            "PASS: every invariant held, every transfer ended as it had to, every fault "
            "was pulled and undone."
        )
    else:
        lines.append(f"{data['verdict'].upper()}:")
        lines.extend(f"  {p}" for p in data["problems"])
    return lines


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def write_json(result: SoakResult, path: Path) -> dict[str, Any]:
    data = summary(result)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return data
