"""Fixtures for the bank's unit tests: a real ledger file, the app in-process, a real server.

Names start with ``bank_`` so other services' tests in this folder can add their own.
Each fixture returns a type from the project or a library, so tests never import this file.
"""

import asyncio
import random
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from bank.api import create_app
from bank.faults import FaultSwitch
from bank.ledger import Ledger

# The fault switch's seed: tests replay random.Random(BANK_SEED) to know each decision.
BANK_SEED = 1234


@pytest.fixture
def bank_ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(tmp_path / "bank.db") as ledger:
        yield ledger


@pytest.fixture
def bank_faults() -> FaultSwitch:
    return FaultSwitch(random.Random(BANK_SEED))


@pytest.fixture
def bank_sleeps() -> list[float]:
    """The delays latency faults asked for, in order (the app does not really wait)."""
    return []


@pytest.fixture
def bank_token() -> str | None:
    """The control token the bank's fault switch needs: none, unless a test parametrizes
    ``bank_token`` (an exposed lab's bank)."""
    return None


@pytest.fixture
def bank_app(
    bank_ledger: Ledger, bank_faults: FaultSwitch, bank_sleeps: list[float], bank_token: str | None
) -> FastAPI:
    """The whole API, as the control listener serves it."""

    async def sleep(seconds: float) -> None:
        bank_sleeps.append(seconds)
        await asyncio.sleep(0)

    return create_app(bank_ledger, bank_faults, sleep=sleep, control_token=bank_token)


@pytest.fixture
async def bank_http(bank_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Plain httpx to the app in-process (ASGITransport ignores httpx timeouts)."""
    transport = httpx.ASGITransport(app=bank_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bank") as http:
        yield http


@pytest.fixture
def bank_server_url(
    bank_ledger: Ledger, bank_faults: FaultSwitch, bank_token: str | None
) -> Iterator[str]:
    """The app on a real uvicorn (own thread and loop) on a free port: real sockets, timeouts."""
    config = uvicorn.Config(
        create_app(bank_ledger, bank_faults, control_token=bank_token),
        host="127.0.0.1",
        port=0,
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "uvicorn failed to start"
        assert time.monotonic() < deadline, "uvicorn did not start within 10 s"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
