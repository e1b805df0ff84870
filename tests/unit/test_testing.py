"""The lab for other projects' tests, without starting it: a suite's own workers become
Compose services that Compose itself accepts, and a failed test's history reads well."""

from __future__ import annotations

import asyncio
import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

from crashlab.diagnosis import describe
from crashlab.stack import COMPOSE_FILE, StackError
from crashlab.testing import Lab, OwnWorker, run_sync


def compose_config(lab: Lab) -> dict[str, dict[str, dict[str, Any]]]:
    """What Compose makes of the lab's files, the suite's own on top."""
    files = [arg for path in (COMPOSE_FILE, *lab.extra_files) for arg in ("-f", str(path))]
    done = subprocess.run(
        ["docker", "compose", *files, "-p", lab.project, "config", "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    config: dict[str, dict[str, dict[str, Any]]] = json.loads(done.stdout)
    return config


def test_own_worker_joins_the_lab_workers_networks_and_finds_temporal_and_the_bank(
    tmp_path: Path,
) -> None:
    lab = Lab(
        project="crashlab-unit",
        workers=[OwnWorker("invoices", build=tmp_path, environment={"LOG_LEVEL": "debug"})],
    )
    service = compose_config(lab)["services"]["invoices"]
    assert service["build"] == {"context": str(tmp_path), "dockerfile": "Dockerfile"}
    assert service["environment"] == {
        "TEMPORAL_ADDRESS": "temporal:7233",
        "BANK_URL": "http://bank:8000",
        "LOG_LEVEL": "debug",
    }
    assert set(service["networks"]) == {"temporal", "bank"}
    # The lab's own worker stays unless told otherwise.
    assert compose_config(lab)["services"]["worker"].get("scale", 1) == 1
    # The levers take the suite's worker by its name, and still refuse unknown ones.
    lab._check_service("invoices")
    with pytest.raises(StackError, match="Unknown service 'invoice'"):
        lab._check_service("invoice")


def test_without_the_lab_worker_only_the_suites_workers_poll() -> None:
    lab = Lab(
        project="crashlab-unit", workers=[OwnWorker("mine", image="mine:1")], lab_worker=False
    )
    services = compose_config(lab)["services"]
    assert services["worker"]["scale"] == 0
    assert services["mine"]["image"] == "mine:1"


@pytest.mark.parametrize(
    ("worker", "problem"),
    [
        (OwnWorker("bank", image="x"), "is a lab service's"),
        (OwnWorker("w"), "give either build= or image="),
        (OwnWorker("w", build=".", image="x"), "give either build= or image="),
    ],
)
def test_an_own_worker_that_cannot_work_is_refused_before_anything_starts(
    worker: OwnWorker, problem: str
) -> None:
    with pytest.raises(StackError, match=problem):
        Lab(project="crashlab-unit", workers=[worker])


def test_the_history_of_a_failing_step_says_which_attempt_and_why() -> None:
    event = HistoryEvent(event_id=12, event_type=EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)
    event.event_time.FromDatetime(datetime(2026, 12, 3, 11, 25, 57, 406000, tzinfo=UTC))
    started = event.activity_task_started_event_attributes
    started.attempt = 3
    started.last_failure.message = "Injected fault:\n  this deposit has failed"
    assert describe(event) == (
        "  12 11:25:57.406 ACTIVITY_TASK_STARTED: attempt 3, after: "
        "Injected fault: this deposit has failed"
    )


async def test_the_sync_helpers_work_inside_an_async_test_too() -> None:
    # asyncio.run inside a running loop would raise; run_sync moves it to a thread.
    assert run_sync(lambda: asyncio.run(asyncio.sleep(0, result="done"))) == "done"
