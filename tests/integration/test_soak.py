"""The chaos soak (crashlab.soak) on a lab of its own: a small seeded run with every kind of
fault, then the same through the command line.

The soak checks the invariants itself; these tests assert that it did, that every
transfer ended the way its kind demands, that every kind of fault was really pulled,
that the JSON report says so, and that the lab was put back afterwards.
"""

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import pytest

from crashlab.invariants import COMPENSATED, COMPLETED, REJECTED
from crashlab.soak import FAULT_KINDS, NORMAL, SoakConfig, render, soak, write_json
from crashlab.stack import ROOT, SERVICES
from crashlab.testing import Lab

pytestmark = pytest.mark.stack

PROJECT = "crashlab-soak"


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab(project=PROJECT) as running:
        yield running


async def test_a_seeded_soak_with_every_kind_of_fault_keeps_every_invariant(
    lab: Lab, tmp_path: Path
) -> None:
    config = SoakConfig(
        transfers=40,
        concurrency=8,
        seed=7,
        workers=2,
        fault_count=len(FAULT_KINDS),
        hold=(1.0, 2.0),
        gap=(1.5, 3.0),
        failing=0.2,
        settle=120,
        progress_every=10,
    )
    result = await soak(lab, config, say=print)
    path = tmp_path / "soak.json"
    data = write_json(result, path)
    report = "\n".join(render(data))
    print(report)

    assert data["verdict"] == "pass", report
    assert data["problems"] == []
    assert all(inv["verdict"] == "held" for inv in data["invariants"]), report
    assert all(inv["checks"] > 0 for inv in data["invariants"])

    transfers = data["transfers"]
    assert transfers["started"] == transfers["ended"] == 40
    assert transfers["unexpected_count"] == 0
    kinds = transfers["by_kind"]
    assert set(kinds) == {"normal", "unknown target", "unknown source", "insufficient funds"}
    # Each transfer ended as its kind demands: a normal one completed, unless it had a
    # single attempt (then it may honestly have been refused or refunded, never broken);
    # an unknown target refunded; an unknown source or too much refused.
    assert all(t.outcome in t.spec.expected for t in result.transfers)
    retried = [t for t in result.transfers if t.spec.kind == NORMAL and t.spec.max_attempts == 0]
    single = [t for t in result.transfers if t.spec.kind == NORMAL and t.spec.max_attempts == 1]
    assert retried and single  # the seed gives both, so both paths ran under the faults
    assert all(t.outcome == COMPLETED for t in retried)
    assert sum(transfers["by_outcome"].values()) == 40
    assert set(transfers["by_outcome"]) <= {COMPLETED, COMPENSATED, REJECTED}

    faults = data["faults"]
    assert faults["by_kind"] == dict.fromkeys(FAULT_KINDS, 1), report
    assert faults["errors"] == 0
    for event in faults["events"]:
        assert event["started"] <= event["injected"] < event["undone"] <= event["ended"]
    assert set(data["recovery_seconds"]) == set(FAULT_KINDS)

    assert json.loads(path.read_text()) == data

    # The lab is as it was: one worker again, everything running, no bank fault.
    assert len(lab.containers("worker")) == 1
    for service in SERVICES:
        assert all(c.state == "running" for c in lab.containers(service))
    async with lab.bank() as bank:
        faults_now = await bank.faults()
    assert faults_now.withdraw is None and faults_now.deposit is None


def test_the_command_line_soaks_a_project_and_exits_0(lab: Lab, tmp_path: Path) -> None:
    path = tmp_path / "cli.json"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "crashlab.soak",
            "--project",
            PROJECT,
            "--transfers",
            "8",
            "--concurrency",
            "4",
            "--workers",
            "1",
            "--faults",
            "bank-drop,worker-kill",
            "--hold",
            "1:1",
            "--gap",
            "1:1.5",
            "--seed",
            "3",
            "--json",
            str(path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Seed 3: the same options with --seed 3" in run.stdout
    assert "PASS: every invariant held" in run.stdout
    data = json.loads(path.read_text())
    assert data["verdict"] == "pass"
    assert data["faults"]["by_kind"] == {"worker-kill": 1, "bank-drop": 1}
    assert data["transfers"]["ended"] == 8
    # Beside the JSON: the page, a band per fault on each of its three charts, and the
    # JUnit file, one passing case per invariant and per fault.
    page = (tmp_path / "cli.html").read_text()
    assert page.count('<g class="band">') == 2 * 3
    suite = ElementTree.parse(tmp_path / "cli.junit.xml").getroot()
    cases = suite.findall(".//testcase")
    assert len(cases) == len(data["invariants"]) + 2
    assert not suite.findall(".//failure") and not suite.findall(".//error")
