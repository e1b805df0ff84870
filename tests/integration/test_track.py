"""The hosted track's scripts against the real stack, challenge by challenge.

For each challenge, in the track's order on one lab: its setup script, its
check (which must fail and say what to do), its solve script (which does what
the learner is asked to do), and its check again (which must pass). The
scripts run as the lab machine runs them, pointed at this test's lab by
LAB_DIR and COMPOSE_PROJECT_NAME, with shorter waits than a learner's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.testing import Lab
from tests.integration.module01 import ROOT, exercise_env, module01_copy

pytestmark = pytest.mark.stack

TRACK = ROOT / "track"
CHALLENGES = [
    "01-crash-proof",
    "02-crash-recovery",
    "03-live-bug-fix",
    "04-compensation",
    "05-network-partition",
]
CHECK_TIME_LIMIT = 60  # seconds: what the hosted platform allows a check


@pytest.fixture(scope="module")
def worker_source() -> Iterator[Path]:
    """A copy of services/worker for the lab's worker: challenge 3 edits its code."""
    root = Path(tempfile.mkdtemp(prefix="crashlab-track-"))
    root.chmod(0o755)  # the worker runs as an unprivileged user in its container
    copy = root / "worker"
    shutil.copytree(
        ROOT / "services" / "worker", copy, ignore=shutil.ignore_patterns("__pycache__")
    )
    yield copy
    shutil.rmtree(root)


@pytest.fixture(scope="module")
def lab(worker_source: Path) -> Iterator[Lab]:
    with Lab(project="crashlab-track", env={"WORKER_SOURCE": str(worker_source)}) as running:
        yield running


@pytest.fixture(scope="module")
def script_env(lab: Lab) -> Iterator[dict[str, str]]:
    module01 = module01_copy()
    yield exercise_env(
        {
            "LAB_DIR": str(ROOT),
            "COMPOSE_PROJECT_NAME": lab.project,
            "MODULE01_DIR": str(module01),
            # Shorter waits than a learner's: 0.3 s between numbers instead of
            # 3 s, Temporal paused for 12 s instead of 30 (the check wants 10).
            "PRINT_PAUSE_SECONDS": "0.3",
            "PAUSE_SECONDS": "12",
            "BANK_LATENCY_MS": "2000",
        }
    )
    shutil.rmtree(module01.parents[1])


def run_script(
    challenge: str, script: str, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    path = TRACK / challenge / f"{script}-workshop-host"
    assert os.access(path, os.X_OK), f"{path} is not executable"
    started = time.monotonic()
    result = subprocess.run(
        [str(path)], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    took = time.monotonic() - started
    if script == "check":
        assert took < CHECK_TIME_LIMIT, f"{challenge} check took {took:.0f} s"
    return result


def test_every_challenge_has_its_scripts_and_assignment() -> None:
    for challenge in CHALLENGES:
        folder = TRACK / challenge
        for script in ("setup", "check", "solve"):
            path = folder / f"{script}-workshop-host"
            assert os.access(path, os.X_OK), f"{path} is missing or not executable"
            assert path.read_text().startswith("#!/usr/bin/env bash\n"), path
        assignment = (folder / "assignment.md").read_text()
        slug = challenge.split("-", 1)[1]
        assert assignment.startswith(f"---\nslug: {slug}\n"), challenge
        assert "type: challenge" in assignment
    assert os.access(TRACK / "track_scripts" / "setup-workshop-host", os.X_OK)


@pytest.mark.parametrize("challenge", CHALLENGES)
def test_check_fails_then_the_solution_passes_it(
    challenge: str, script_env: dict[str, str]
) -> None:
    setup = run_script(challenge, "setup", script_env, timeout=120)
    assert setup.returncode == 0, setup

    before = run_script(challenge, "check", script_env, timeout=CHECK_TIME_LIMIT)
    assert before.returncode != 0, before
    assert before.stdout.startswith("FAIL: "), before
    assert len(before.stdout.strip().splitlines()) == 1, before.stdout

    solve = run_script(challenge, "solve", script_env, timeout=180)
    assert solve.returncode == 0, solve

    after = run_script(challenge, "check", script_env, timeout=CHECK_TIME_LIMIT)
    assert after.returncode == 0, after
    assert after.stdout.startswith("PASS: "), after
