"""The hosted track's checks against the real stack: the ways a check could be fooled.

Each challenge played as the learner plays it (setup, the check failing and saying
what to do, the solve script, the check passing) runs on a fresh VM, from the bundle
and from a clone: `make test-hosted` (tests/hosted), which CI runs after `make test`.
Here, on one lab: the ways a check could be fooled, or could fail a learner who did
the step: two workers at once instead of a Ctrl+C, a graceful stop instead of a
kill, the bank's fault switch instead of the code bug, a refund still retrying, the
worker paused instead of Temporal. And the setups bring back a lab the learner left
broken or took down.

The scripts run as the lab machine runs them, pointed at this test's lab by
LAB_DIR and COMPOSE_PROJECT_NAME, with shorter waits than a learner's. The lab
is an exposed one's: its fault switch needs the control token (LAB_TOKEN).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bank.models import Fault, FaultMode
from crashlab.experiments import versioning
from crashlab.stack import SERVICES
from crashlab.testing import PORT_VARIABLES, Lab
from crashlab.track import lab_state
from crashlab.track.__main__ import change_workflow, wait_activity, wait_stuck
from crashlab.track.record import Recorder
from tests.hints import SKIPPED_HINTS, assert_one_fail_line
from tests.integration.module01 import ROOT, exercise_env, module01_copy, run_workflow_command
from worker.shared import PRINT_NUMBERS_TASK_QUEUE_NAME, PRINT_NUMBERS_WORKFLOW_ID

pytestmark = pytest.mark.stack

TRACK = ROOT / "track"
CHALLENGES = [
    "01-crash-proof",
    "02-crash-recovery",
    "03-live-bug-fix",
    "04-compensation",
    "05-network-partition",
    "06-versioning",
]
CHECK_TIME_LIMIT = 60  # seconds: what the hosted platform allows a check
TOKEN = "track-test-token"
LATENCY_MS = 2000


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
    env = {"WORKER_SOURCE": str(worker_source), "BANK_CONTROL_TOKEN": TOKEN}
    with Lab(project=f"crashlab-track-{uuid.uuid4().hex[:6]}", env=env) as running:
        try:
            yield running
        finally:
            Recorder(running.project).stop()
            shutil.rmtree(ROOT / "build" / "track" / running.project, ignore_errors=True)


@pytest.fixture(scope="module")
def script_env(lab: Lab, worker_source: Path) -> Iterator[dict[str, str]]:
    module01 = module01_copy()
    yield exercise_env(
        {
            "LAB_DIR": str(ROOT),
            "COMPOSE_PROJECT_NAME": lab.project,
            "MODULE01_DIR": str(module01),
            # What the lab was started with, for a setup that has to start it again.
            **{name: lab.env[name] for name in PORT_VARIABLES},
            "WORKER_SOURCE": str(worker_source),
            "LAB_BIND_ADDRESS": "127.0.0.1",
            "LAB_TOKEN": TOKEN,
            # Shorter waits than a learner's: 0.3 s between numbers instead of
            # 3 s, Temporal paused for 12 s instead of 30 (the check wants 10).
            "PRINT_PAUSE_SECONDS": "0.3",
            "PAUSE_SECONDS": "12",
            "BANK_LATENCY_MS": str(LATENCY_MS),
        }
    )
    shutil.rmtree(module01.parents[1])


def run_script(
    challenge: str, script: str, env: dict[str, str], timeout: float = 180
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


def setup(challenge: str, env: dict[str, str]) -> None:
    done = run_script(challenge, "setup", env)
    assert done.returncode == 0, done


def fails_with(challenge: str, env: dict[str, str], hint: str) -> str:
    """The check fails with one FAIL: line that contains ``hint``."""
    result = run_script(challenge, "check", env, timeout=CHECK_TIME_LIMIT)
    assert result.returncode != 0, result
    assert_one_fail_line(result.stdout, hint)
    return result.stdout


def passes(challenge: str, env: dict[str, str]) -> str:
    result = run_script(challenge, "check", env, timeout=CHECK_TIME_LIMIT)
    assert result.returncode == 0, result
    assert result.stdout.startswith("PASS: "), result
    return result.stdout


# --- the levers, as the learner pulls them ----------------------------------------------


def set_fault(lab: Lab, operation: str, fault: Fault | None) -> None:
    async def call() -> None:
        async with lab.bank() as bank:
            if fault is None:
                await bank.clear_faults()
            else:
                await bank.set_fault(operation, fault)

    asyncio.run(call())


def start_transfer(lab: Lab, *args: str) -> str:
    """Starts a transfer (make transfer ... in another terminal); returns its reference id."""
    reference = f"test-{uuid.uuid4().hex[:8]}"
    started = lab.starter("transfer", "--reference-id", reference, "--no-wait", *args)
    assert started.returncode == 0, started
    return reference


def wait_for_activity(lab: Lab, reference: str, activity: str, min_attempt: int = 1) -> None:
    asyncio.run(wait_activity(lab, f"transfer-{reference}", activity, min_attempt, 60))


def result_of(lab: Lab, reference: str) -> subprocess.CompletedProcess[str]:
    """Waits for the transfer as `make transfer REFERENCE_ID=...` does."""
    return lab.starter("transfer", "--reference-id", reference)


# --- the track's own flow ---------------------------------------------------------------


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
    assert not (TRACK / "lib" / "labcheck.py").exists(), "the checks live in crashlab/track"


# --- checks that cannot be fooled, and never fail a learner who did the step ------------


def test_crash_proof_two_workers_at_once_is_not_a_crash(
    lab: Lab, script_env: dict[str, str]
) -> None:
    """Two terminals running run_workflow.py at once, no Ctrl+C: nothing recovers."""
    setup("01-crash-proof", script_env)
    # The workflow first, at 2 s a number, so that both workers join it while it runs.
    lab.compose(
        "exec", "-T", "temporal", "temporal", "workflow", "start",
        "--type", "PrintNumbersWorkflow", "--task-queue", PRINT_NUMBERS_TASK_QUEUE_NAME,
        "--workflow-id", PRINT_NUMBERS_WORKFLOW_ID, "--input", "2",
    )  # fmt: skip
    env = {**script_env, "TEMPORAL_ADDRESS": lab.temporal_address}
    module01 = script_env["MODULE01_DIR"]
    workers = [
        subprocess.Popen(
            run_workflow_command(), cwd=module01, env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    for worker in workers:
        out, _ = worker.communicate(timeout=120)
        assert worker.returncode == 0, out
        assert "is already running" in out, out  # both worked on the same run
    # The first worker to take a workflow task keeps the workflow (its sticky queue) and
    # runs the activities it schedules itself (eager dispatch): the other one mostly idles,
    # and the history shows one worker from start to end. If they do take turns, the
    # check says so. Either way nothing recovered, and the check must fail.
    result = run_script("01-crash-proof", "check", script_env, timeout=CHECK_TIME_LIMIT)
    assert result.returncode != 0 and result.stdout.startswith("FAIL: "), result
    assert "in one go" in result.stdout or "two workers at the same time" in result.stdout


def test_crash_recovery_a_graceful_stop_is_not_a_crash(
    lab: Lab, script_env: dict[str, str]
) -> None:
    setup("02-crash-recovery", script_env)
    set_fault(lab, "all", Fault(FaultMode.LATENCY, latency_ms=LATENCY_MS))
    reference = start_transfer(lab)
    wait_for_activity(lab, reference, "withdraw")
    lab.stop("worker")  # SIGTERM: it finishes the withdraw and leaves
    lab.start("worker")
    assert result_of(lab, reference).returncode == 0
    set_fault(lab, "all", None)
    fails_with("02-crash-recovery", script_env, "stopped gracefully")


def test_live_bug_fix_by_the_fault_switch_passes(lab: Lab, script_env: dict[str, str]) -> None:
    """The lab's other way to break the deposit: the bank's switch, cleared while it retries."""
    setup("03-live-bug-fix", script_env)
    set_fault(lab, "deposit", Fault(FaultMode.ERROR))
    reference = start_transfer(lab)
    wait_for_activity(lab, reference, "deposit", min_attempt=2)
    fails_with("03-live-bug-fix", script_env, "make faults-clear")
    set_fault(lab, "deposit", None)
    assert result_of(lab, reference).returncode == 0
    passes("03-live-bug-fix", script_env)


def test_live_bug_fix_says_restart_when_the_fix_is_not_loaded(
    lab: Lab, script_env: dict[str, str], worker_source: Path
) -> None:
    setup("03-live-bug-fix", script_env)
    activities = worker_source / "activities.py"
    working = activities.read_text()
    activities.write_text(working.replace("self.bank.deposit(", "self.deposit_that_fails(", 1))
    fails_with("03-live-bug-fix", script_env, "the worker does not run it yet")
    activities.write_text(working)


def test_compensation_while_the_refund_retries_says_clear_the_fault(
    lab: Lab, script_env: dict[str, str]
) -> None:
    setup("04-compensation", script_env)
    set_fault(lab, "deposit", Fault(FaultMode.ERROR))
    reference = start_transfer(lab, "--attempts", "1")
    wait_for_activity(lab, reference, "refund", min_attempt=2)
    hint = fails_with("04-compensation", script_env, "Clear the fault (make faults-clear)")
    assert "redo" not in hint and "ATTEMPTS=1" not in hint, hint
    set_fault(lab, "deposit", None)
    assert result_of(lab, reference).returncode == 1  # failed, and refunded
    passes("04-compensation", script_env)


def test_network_partition_a_paused_worker_is_not_a_paused_temporal(
    lab: Lab, script_env: dict[str, str]
) -> None:
    """A worker frozen for 12 s leaves the same silence in the history: Docker's record
    tells which container was paused."""
    setup("05-network-partition", script_env)
    set_fault(lab, "all", Fault(FaultMode.LATENCY, latency_ms=LATENCY_MS))
    reference = start_transfer(lab)
    wait_for_activity(lab, reference, "withdraw")
    lab.pause("worker")
    try:
        time.sleep(12)  # the partition itself, not a wait for readiness
    finally:
        lab.unpause("worker")
    assert result_of(lab, reference).returncode == 0
    set_fault(lab, "all", None)
    fails_with("05-network-partition", script_env, "You paused the worker, not Temporal")


def test_network_partition_ignores_an_earlier_challenges_silent_transfer(
    lab: Lab, script_env: dict[str, str]
) -> None:
    """Challenge 2's transfer, its worker killed and left down for 11 s: a silence in its
    history, and the worker restarted again since. Not challenge 5's evidence."""
    setup("02-crash-recovery", script_env)
    set_fault(lab, "all", Fault(FaultMode.LATENCY, latency_ms=LATENCY_MS))
    reference = start_transfer(lab)
    wait_for_activity(lab, reference, "withdraw")
    lab.kill("worker")
    time.sleep(11)  # the worker stays down: the silence itself, not a wait for readiness
    lab.start("worker")
    assert result_of(lab, reference).returncode == 0
    set_fault(lab, "all", None)
    passes("02-crash-recovery", script_env)

    setup("05-network-partition", script_env)
    lab.stop("worker")
    lab.start("worker")
    fails_with("05-network-partition", script_env, SKIPPED_HINTS["05-network-partition"])


# --- setups that survive what the learner did before -----------------------------------


def healthy_and_clean(lab: Lab, worker_source: Path) -> None:
    for service in SERVICES:
        found = lab.containers(service)
        assert found and all(c.state == "running" and c.health == "healthy" for c in found)
        assert all(lab.is_connected(c) for c in found), service

    async def faults() -> tuple[object, object]:
        async with lab.bank() as bank:
            state = await bank.faults()
            return state.withdraw, state.deposit

    assert asyncio.run(faults()) == (None, None)
    assert not lab_state.deposit_has_bug((worker_source / "activities.py").read_text())


def test_versioning_says_each_next_step_and_wants_the_patch_kept(
    lab: Lab, script_env: dict[str, str]
) -> None:
    challenge = "06-versioning"
    setup(challenge, script_env)
    set_fault(lab, "deposit", Fault(FaultMode.ERROR))
    old = start_transfer(lab, "--from", "10-007", "--to", "10-008", "--amount", "10")
    wait_for_activity(lab, old, "deposit", min_attempt=2)
    fails_with(challenge, script_env, "Now change the workflow's code while it waits")

    change_workflow(lab, "new-step")
    lab.stop("worker")
    lab.start("worker")
    set_fault(lab, "deposit", None)
    asyncio.run(wait_stuck(lab, f"transfer-{old}", 60))
    fails_with(challenge, script_env, 'behind `if workflow.patched("cooling-off"):`')

    change_workflow(lab, "patched")
    lab.stop("worker")
    lab.start("worker")
    assert result_of(lab, old).returncode == 0
    fails_with(challenge, script_env, "Now start a new transfer (make transfer)")

    new = lab.starter("transfer", "--from", "10-007", "--to", "10-008", "--amount", "10")
    assert new.returncode == 0, new
    passes(challenge, script_env)

    # Taking the patch out too soon: the new path's history no longer replays.
    path = lab_state.workflows_file(lab)
    path.write_text(versioning.without_change(path.read_text()))
    fails_with(challenge, script_env, "cannot replay these transfers any more")
    change_workflow(lab, "new-step")  # a learner's leftover edit...
    setup(challenge, script_env)  # ...which the setup takes out
    assert "cooling-off" not in path.read_text()


def test_setup_repairs_whatever_the_learner_left_broken(
    lab: Lab, script_env: dict[str, str], worker_source: Path
) -> None:
    activities = worker_source / "activities.py"
    activities.write_text(
        activities.read_text().replace("self.bank.deposit(", "self.deposit_that_fails(", 1)
    )
    set_fault(lab, "all", Fault(FaultMode.DOWN))
    lab.kill("worker")
    lab.disconnect("bank")
    lab.pause("temporal")
    setup("02-crash-recovery", script_env)
    healthy_and_clean(lab, worker_source)
    fails_with("02-crash-recovery", script_env, SKIPPED_HINTS["02-crash-recovery"])
    setup("02-crash-recovery", script_env)  # a second run changes nothing
    healthy_and_clean(lab, worker_source)


@pytest.mark.parametrize("volumes", [False, True], ids=["make down", "make clean"])
def test_setup_brings_the_lab_back_after_it_was_taken_down(
    volumes: bool, lab: Lab, script_env: dict[str, str], worker_source: Path
) -> None:
    # What `make down` and `make clean` run, on this test's project.
    lab.compose("--profile", "tools", "down", *(["--volumes"] if volumes else []))
    setup("05-network-partition", script_env)
    healthy_and_clean(lab, worker_source)
    balances = lab.balances()
    if volumes:
        assert balances["85-150"] == 2000, balances  # wiped: a fresh bank
    fails_with("05-network-partition", script_env, SKIPPED_HINTS["05-network-partition"])


def test_the_starter_links_to_the_hosted_ui_tab(lab: Lab, script_env: dict[str, str]) -> None:
    """On the hosted platform the starter's UI link is the Temporal UI tab's address."""
    saved = lab_state.COMPOSE_ENV_FILE.read_text() if lab_state.COMPOSE_ENV_FILE.exists() else None
    try:
        setup("02-crash-recovery", {**script_env, "INSTRUQT_PARTICIPANT_ID": "abc123"})
        tab = "https://workshop-host-8080-abc123.env.play.instruqt.com"
        done = lab.starter("transfer")
        assert done.returncode == 0, done
        assert f"(UI: {tab}/namespaces/default/workflows/transfer-" in done.stderr, done.stderr
    finally:
        if saved is None:
            lab_state.COMPOSE_ENV_FILE.unlink(missing_ok=True)
        else:
            lab_state.COMPOSE_ENV_FILE.write_text(saved)


def test_the_readme_curl_commands_work_on_an_exposed_lab(lab: Lab) -> None:
    """The README's curl lines for the fault switch, run as written on a lab with a token."""
    readme = (ROOT / "README.md").read_text()
    block = next(
        b for b in readme.split("```bash\n") if "curl -X PUT localhost:8081/faults/deposit" in b
    ).split("```")[0]
    script = block.replace("localhost:8081", lab.bank_url.removeprefix("http://"))
    put, _, delete = script.partition("curl -X DELETE")
    env = {**os.environ, "LAB_TOKEN": TOKEN}

    async def deposit_fault() -> object:
        async with lab.bank() as bank:
            return (await bank.faults()).deposit

    done = subprocess.run(["bash", "-euc", put], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done
    assert asyncio.run(deposit_fault()) is not None
    cleared = subprocess.run(
        ["bash", "-euc", put.split("curl -X PUT")[0] + "curl -X DELETE" + delete],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert cleared.returncode == 0, cleared
    assert asyncio.run(deposit_fault()) is None
