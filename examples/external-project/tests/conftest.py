"""Our worker goes into the lab beside the lab's own: the levers act on it by name."""

from pathlib import Path

import pytest
from crashlab.testing import LabConfig, OwnWorker

PROJECT = Path(__file__).resolve().parents[1]
WORKER = "invoices-worker"


@pytest.fixture(scope="session")
def crashlab_config() -> LabConfig:
    return LabConfig(workers=[OwnWorker(WORKER, build=PROJECT)])
