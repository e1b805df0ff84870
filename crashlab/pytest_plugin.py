"""The lab as a pytest fixture. Installing crashlab registers this plugin (entry point
pytest11), so a suite needs no conftest to use it:

    def test_a_crash_loses_no_money(crashlab):
        crashlab.starter("transfer", "--no-wait", "--reference-id", "t-1")
        crashlab.kill("worker")
        crashlab.start("worker")
        assert crashlab.wait_settled().ok

`crashlab` is a session fixture: one lab (crashlab.testing.Lab) for the whole run, in
its own Compose project on free ports, its volumes removed at the end. Override the
`crashlab_config` fixture to put workers of your own into it. A failed test's report
gets the lab's status screen, the open workflows' histories and each service's logs.

    --crashlab-reuse    attach to a lab already running (`make up`, or a kept one)
    --crashlab-keep     leave the lab running when a test failed, to look at it
    --crashlab-project  the Compose project to start or attach to
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator

import pytest

from crashlab.constants import DEFAULT_PROJECT
from crashlab.diagnosis import diagnose
from crashlab.stack import Stack
from crashlab.testing import Lab, LabConfig

# The project a test run's lab gets, and the one --crashlab-reuse looks for first.
TEST_PROJECT = "crashlab-pytest"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("crashlab", "the crash-proof lab (the crashlab fixture)")
    group.addoption(
        "--crashlab-reuse",
        action="store_true",
        help="attach to a lab already running (--crashlab-project, else a kept test lab, "
        f"else `make up`'s {DEFAULT_PROJECT!r}) instead of starting one; it is left running",
    )
    group.addoption(
        "--crashlab-keep",
        action="store_true",
        help="leave the lab running after a failed test, to look at it (then --crashlab-reuse)",
    )
    group.addoption(
        "--crashlab-project",
        default=None,
        metavar="NAME",
        help=f"the lab's Compose project (default {TEST_PROJECT!r})",
    )


@pytest.fixture(scope="session")
def crashlab_config() -> LabConfig:
    """The lab's make-up: override it in conftest.py to add workers of your own."""
    return LabConfig()


@pytest.fixture(scope="session")
def crashlab(request: pytest.FixtureRequest, crashlab_config: LabConfig) -> Iterator[Lab]:
    option = request.config.option
    say = _reporter(request.config)
    config = crashlab_config
    started = time.monotonic()
    if option.crashlab_reuse:
        project = option.crashlab_project or _running_project()
        lab = Lab.attach(
            project, workers=config.workers, lab_worker=config.lab_worker, env=config.env
        )
        say(f"crashlab: attached to the lab in project {lab.project} ({_since(started)})")
        yield lab
        return
    lab = Lab(
        project=option.crashlab_project or TEST_PROJECT,
        workers=config.workers,
        lab_worker=config.lab_worker,
        env=config.env,
    )
    if lab.containers():
        # A lab kept by an earlier run: a new run starts from the seed balances.
        lab.down()
    say(f"crashlab: starting the lab in project {lab.project}...")
    try:
        lab.__enter__()
    except BaseException:
        if not option.crashlab_keep:  # kept, a lab that would not start can be looked at
            lab.down()
        raise
    say(f"crashlab: the lab is up ({_since(started)}): Temporal {lab.temporal_address}")
    try:
        yield lab
    finally:
        if option.crashlab_keep and request.session.testsfailed:
            say(
                f"crashlab: kept the lab in project {lab.project} after a failure: "
                f"Temporal UI {lab.ui_url}, bank {lab.bank_url}; "
                f"`crashlab --project {lab.project} status` shows it. Run again with "
                "--crashlab-reuse to use it, or remove it: "
                f"docker compose -p {lab.project} down --volumes"
            )
        else:
            lab.down()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    lab = getattr(item, "funcargs", {}).get("crashlab")
    if report.failed and isinstance(lab, Lab):
        for title, text in diagnose(lab):
            report.sections.append((f"crashlab: {title}", text))
    return report


def _running_project() -> str:
    """The lab --crashlab-reuse attaches to: a kept test lab, else `make up`'s."""
    for project in (TEST_PROJECT, DEFAULT_PROJECT):
        if any(c.state == "running" for c in Stack(project=project).containers()):
            return project
    return DEFAULT_PROJECT  # Lab.attach says it is not running, and what to do


def _reporter(config: pytest.Config) -> Callable[[str], None]:
    """Prints to the terminal as it happens: starting a lab takes seconds, and a person
    watching wants to know why, not to find it later among the captured output."""
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")

    def say(line: str) -> None:
        if terminal is None:
            return
        if capture is None:
            terminal.write_line(line)
            return
        with capture.global_and_fixture_disabled():
            terminal.write_line(line)

    return say


def _since(started: float) -> str:
    return f"{time.monotonic() - started:.1f} s"
