"""The lab as another project's test suite meets it: examples/external-project, copied
outside the repository, with a venv of its own where the lab is installed from its wheel,
and nothing but the pytest plugin between them.

The example's three tests (the lab's worker killed, the project's own worker killed in
its container, and run in the test process through a frozen bank) must pass; a failing
test must come with the lab's status, the open workflows' histories and the logs;
--crashlab-keep must leave that lab up, and --crashlab-reuse must attach to it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from crashlab.stack import Stack
from tests.integration.module01 import ROOT, UV

pytestmark = pytest.mark.stack

PROJECT = "crashlab-external"
# Each inner pytest run starts (or attaches to) a lab and runs real transfers.
RUN_TIMEOUT = 600

BROKEN_TEST = """
from crashlab.testing import Lab


def test_a_deliberately_wrong_expectation(crashlab: Lab) -> None:
    crashlab.fault("deposit", "error")  # the deposit fails and retries: the transfer stays open
    crashlab.transfer("broken-1", wait=False)
    crashlab.wait_for_step("broken-1", "withdraw")
    assert crashlab.balances()["43-812"] == 250  # wrong: the deposit has not happened
"""


def run(
    cmd: list[str | Path],
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env=env,
        timeout=timeout,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example, outside the repository, with the lab installed from its wheel."""
    where = tmp_path_factory.mktemp("elsewhere") / "invoices"
    shutil.copytree(
        ROOT / "examples" / "external-project",
        where,
        ignore=shutil.ignore_patterns(".venv", "__pycache__", ".*_cache"),
    )
    dist = where.parent / "dist"
    built = run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", dist, ROOT])
    assert built.returncode == 0, built.stderr
    [wheel] = dist.glob("crashlab-*.whl")
    made = run([sys.executable, "-m", "venv", where / ".venv"])
    assert made.returncode == 0, made.stderr
    python = where / ".venv" / "bin" / "python"
    tools: list[str | Path] = [wheel, f"pytest=={pytest.__version__}"]
    installed = run([UV, "pip", "install", "--quiet", "--python", python, *tools])
    assert installed.returncode == 0, installed.stderr
    return where


def pytest_in(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The project's own pytest, in its own directory, with none of this repository's
    environment: only what says which images to use."""
    keep = ("PATH", "HOME", "DOCKER_HOST", "LAB_IMAGE_TAG", "XDG_CACHE_HOME")
    env = {k: v for k, v in os.environ.items() if k in keep}
    return run(
        [project / ".venv" / "bin" / "pytest", "-p", "no:cacheprovider", *args],
        cwd=project,
        env=env,
        timeout=RUN_TIMEOUT,
    )


def lab_running() -> bool:
    return any(c.state == "running" for c in Stack(project=PROJECT).containers())


def leftovers() -> list[str]:
    """Every container of the project, whatever Compose file it came from."""
    label = f"label=com.docker.compose.project={PROJECT}"
    found = run(["docker", "ps", "--all", "--quiet", "--filter", label])
    return found.stdout.split()


def test_the_example_suite_passes_with_the_plugin_alone(project: Path) -> None:
    done = pytest_in(project, "--crashlab-project", PROJECT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout
    assert "crashlab: the lab is up" in done.stdout
    assert not lab_running(), "the lab should be gone after a run that passed"
    assert not leftovers(), "nor any container of it, the project's own worker included"


def test_a_failure_shows_the_lab_and_keep_then_reuse_it(project: Path) -> None:
    (project / "tests" / "test_broken.py").write_text(BROKEN_TEST)
    try:
        failed = pytest_in(
            project, "tests/test_broken.py", "--crashlab-keep", "--crashlab-project", PROJECT
        )
        out = failed.stdout
        assert failed.returncode == 1, out + failed.stderr
        # What a person needs to see why: the status screen, the histories, the logs.
        status = section(out, "crashlab: status")
        assert "bank deposit: error" in status and "transfer-broken-1" in status
        histories = section(out, "crashlab: open workflows")
        assert "MoneyTransfer transfer-broken-1" in histories
        assert "ACTIVITY_TASK_SCHEDULED: deposit" in histories
        assert "key broken-1-withdraw" in section(out, "crashlab: bank logs")
        assert "Withdrawing $250" in section(out, "crashlab: worker logs")
        assert "Invoices worker polling" in section(out, "crashlab: invoices-worker logs")
        assert lab_running(), "--crashlab-keep should leave the lab of a failed run up"
        assert "--crashlab-reuse" in out

        reused = pytest_in(
            project, "tests/test_own_worker.py", "--crashlab-reuse", "--crashlab-project", PROJECT
        )
        assert reused.returncode == 0, reused.stdout + reused.stderr
        assert f"crashlab: attached to the lab in project {PROJECT}" in reused.stdout
        assert lab_running(), "--crashlab-reuse leaves the lab it attached to running"
    finally:
        (project / "tests" / "test_broken.py").unlink()
        # The project's own worker is not in the lab's Compose file: an orphan here.
        Stack(project=PROJECT).compose(
            "down", "--volumes", "--remove-orphans", "--timeout", "2", check=False
        )
    assert not leftovers(), "the kept lab, its own worker included, is gone after the test"


def section(output: str, title: str) -> str:
    """One titled section of pytest's failure report (`---- title ----` up to the next)."""
    lines = output.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("-") and f" {title} " in line]
    assert starts, f"no {title!r} section in:\n{output}"
    body = []
    for line in lines[starts[0] + 1 :]:
        if line.startswith(("----", "====", "____")):
            break
        body.append(line)
    return "\n".join(body)
