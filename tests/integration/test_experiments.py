"""The source documents' experiments (crashlab.experiments), run on a lab of their own.

Each experiment's run() is called with short durations, and the test asserts on
the claims it checked: the same evidence a learner's `python -m crashlab.experiments`
prints. The worker runs a copy of services/worker (WORKER_SOURCE), so the
bug-fix experiment's edit of activities.py never touches the repository.
"""

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from crashlab.experiments import (
    bugfix,
    compensation,
    crash,
    link,
    partition,
    print_numbers,
    task_queue,
    versioning,
)
from crashlab.experiments.__main__ import main
from crashlab.experiments.kit import Outcome, worker_source
from crashlab.stack import ROOT
from crashlab.testing import Lab

pytestmark = pytest.mark.stack

PROJECT = "crashlab-experiments"
SCRIPT = ROOT / "exercises" / "module01" / "python_print.py"
STEPS = [f"Step {i}" for i in range(1, 11)]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    source = tmp_path_factory.mktemp("worker-source") / "worker"
    shutil.copytree(
        ROOT / "services" / "worker", source, ignore=shutil.ignore_patterns("__pycache__")
    )
    source.chmod(0o755)  # the container's own user reads it through the bind mount
    with Lab(project=PROJECT, env={"WORKER_SOURCE": str(source)}) as running:
        yield running


def held(outcome: Outcome, fragment: str, times: int = 1) -> bool:
    """The claim was checked ``times`` times and held every time."""
    found = outcome.claims(fragment)
    assert found, f"no claim contains {fragment!r}: {[c.claim for c in outcome.checks]}"
    return len(found) == times and all(c.passed for c in found)


def failures(outcome: Outcome) -> list[str]:
    return [f"{c.claim}: {c.evidence}" for c in outcome.failed]


# --- the plain script of module 1 --------------------------------------------------------


def assert_points_at_the_dashboard(said: list[str]) -> None:
    """Each experiment tells the learner what its lever looks like on the dashboard."""
    assert any("On the dashboard: " in line for line in said), "\n".join(said)


def test_python_print_counts_step_1_to_10() -> None:
    env = {**os.environ, "PRINT_SLEEP_SECONDS": "0"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, env=env, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == STEPS


def test_python_print_runs_with_uv_run() -> None:
    # tests/requirements.txt installs uv beside this Python.
    uv = str(Path(sys.executable).with_name("uv"))
    env = {**os.environ, "PRINT_SLEEP_SECONDS": "0"}
    result = subprocess.run(
        [uv, "run", "--offline", "python_print.py"],
        cwd=SCRIPT.parent,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == STEPS


# --- the experiments ---------------------------------------------------------------------


async def test_print_numbers_resumes_where_it_left_off(lab: Lab) -> None:
    said: list[str] = []

    outcome = await print_numbers.run(
        lab, said.append, pause_seconds=1.0, down_seconds=2.0, script_sleep=0.1
    )
    assert_points_at_the_dashboard(said)

    assert outcome.ok, failures(outcome)
    assert held(outcome, "the plain script starts over from Step 1")
    assert held(outcome, "stays Running while no worker runs")
    assert held(outcome, "each number 1 to 10 was printed by exactly one completed activity")
    assert held(outcome, "no number was scheduled twice")
    assert held(outcome, "it printed none of 1 to 3")
    assert held(outcome, "the history shows the gap")
    assert outcome.figures["history_gap_seconds"] >= 2.0
    assert any(line.startswith("1. Without Temporal") for line in said)
    assert any(f"Look: the workflow in the Temporal UI: {lab.ui_url}/" in line for line in said)


async def test_crash_during_withdraw_and_deposit_moves_money_exactly_once(lab: Lab) -> None:
    said: list[str] = []

    outcome = await crash.run(lab, said.append, during=("withdraw", "deposit"))
    assert_points_at_the_dashboard(said)

    assert outcome.ok, failures(outcome)
    assert held(outcome, "the workflow is still Running with its worker dead", times=2)
    assert held(outcome, "Temporal ran the killed withdraw again")
    assert held(outcome, "Temporal ran the killed deposit again")
    assert held(outcome, "withdraw moved $250 exactly once", times=2)
    assert held(outcome, "deposit moved $250 exactly once", times=2)
    assert held(outcome, "85-150 lost exactly $250 and 43-812 gained exactly $250", times=2)
    assert held(outcome, "the bank's ledger invariants hold", times=2)
    # A figure to print, never to assert on: only that it was measured.
    assert {"recovery_seconds_withdraw", "recovery_seconds_deposit"} <= outcome.figures.keys()
    assert any(line.lstrip().startswith("FIGURE: ") for line in said)


async def test_bugfix_by_switch_and_by_code_runs_the_withdraw_once(lab: Lab) -> None:
    activities = Path(lab.env["WORKER_SOURCE"]) / "activities.py"
    before = activities.read_text()
    said: list[str] = []

    outcome = await bugfix.run(lab, said.append, ways=("switch", "code"))
    assert_points_at_the_dashboard(said)

    assert outcome.ok, failures(outcome)
    assert held(outcome, "while the deposit retries, the withdraw is done, once", times=2)
    assert held(outcome, "the worker log shows one withdraw, then the deposit failing")
    assert held(outcome, "the withdraw ran once", times=2)
    assert held(outcome, "the deposit failed 3 times or more", times=2)
    assert held(outcome, "deposit moved $250 exactly once", times=2)
    assert held(outcome, "the starter prints the tutorial's result", times=2)
    assert any("Depositing $250 into account 43-812." in line for line in said)
    assert any("This deposit has failed." in line for line in said)
    assert activities.read_text() == before  # the bug was taken out again


async def test_compensation_refunds_the_withdrawal(lab: Lab) -> None:
    said: list[str] = []
    outcome = await compensation.run(lab, said.append)
    assert_points_at_the_dashboard(said)

    assert outcome.ok, failures(outcome)
    assert held(outcome, "failed with a message that says the money was refunded")
    assert held(outcome, "the deposit was tried exactly once")
    assert held(outcome, "refund moved $250 exactly once")
    assert held(outcome, "no deposit moved any money")
    assert held(outcome, "the balances are restored")
    assert held(outcome, "is compensated in the ledger")


async def test_partition_of_temporal_and_of_the_bank_completes_every_transfer(lab: Lab) -> None:
    said: list[str] = []
    outcome = await partition.run(lab, said.append, seconds_down=5.0, transfers=4)
    assert_points_at_the_dashboard(said)

    assert outcome.ok, failures(outcome)
    assert held(outcome, "all 4 transfers completed", times=2)
    assert held(outcome, "each of the 4 transfers moved its $10 exactly once", times=2)
    assert held(outcome, "the ledger shows each of the 4 transfers completed", times=2)
    assert all(c.state == "running" for c in lab.containers())


async def test_a_slow_link_loses_nothing_and_lost_answers_are_retried_once(lab: Lab) -> None:
    said: list[str] = []
    outcome = await link.run(lab, said.append, delay_ms=200, transfers=2)
    assert_points_at_the_dashboard(said)

    assert outcome.ok, failures(outcome)
    assert held(outcome, "slower across the slow link")
    assert held(outcome, "no step was retried")
    assert held(outcome, "each withdrawal timed out and was retried")
    assert held(outcome, "all 2 transfers completed", times=2)
    assert held(outcome, "each of the 2 transfers moved its $10 exactly once", times=2)
    assert held(outcome, "the bank's ledger invariants hold", times=2)


async def test_task_queue_typo_stalls_until_the_name_is_fixed(lab: Lab) -> None:
    said: list[str] = []
    outcome = await task_queue.run(lab, said.append, seconds_stalled=2.0)
    assert_points_at_the_dashboard(said)

    assert outcome.ok, failures(outcome)
    assert held(outcome, "nothing ever ran: its history holds only its start")
    assert held(outcome, "no worker polls 'MONEY_TRANSFER_TASK_QUEUE'")
    assert held(outcome, "nothing moved at the bank while it stalled")
    assert held(outcome, "the run on the right queue completed")
    assert held(outcome, "withdraw moved $250 exactly once")


# --- the command line --------------------------------------------------------------------


async def test_versioning_strands_running_transfers_until_the_change_is_patched(
    lab: Lab,
) -> None:
    source = worker_source(lab) / "workflows.py"
    said: list[str] = []

    outcome = await versioning.run(lab, said.append)
    assert_points_at_the_dashboard(said)

    assert outcome.ok, failures(outcome)
    assert held(outcome, "shows a non-determinism error (WorkflowTaskFailed")
    assert held(outcome, "they stay Running, stuck")
    assert held(outcome, "`make status` names each one's non-determinism error")
    assert held(outcome, "the old transfers finished on the old path")
    assert held(outcome, "the new transfer took the new path")
    assert held(outcome, "the bank's ledger invariants hold")
    # The worker's code is as it was, and the worker runs it again.
    assert source.read_text() == (ROOT / "services" / "worker" / "workflows.py").read_text()


def test_command_line_runs_an_experiment_and_exits_zero(lab: Lab) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "crashlab.experiments",
            "task-queue",
            "--project",
            PROJECT,
            "--seconds",
            "1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS: task-queue:" in result.stdout
    assert "  PASS  task-queue" in result.stdout.split("Summary", 1)[1]


def test_command_line_fails_with_a_reason_when_the_lab_is_not_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["compensation", "--project", "crashlab-no-such-lab"])

    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL: compensation could not finish" in out
    assert "make up" in out
