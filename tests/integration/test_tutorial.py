"""The tutorial's own programs against the real lab, and a client that sends anything.

tests/integration/tutorial/ holds the money-transfer tutorial's starter and
worker with its exact names and types (see its README). They run here as
processes of their own, as a learner runs them: the tutorial's starter against
the lab's worker, the lab's starter against the tutorial's worker. Then a plain
Temporal client starts MoneyTransfer with inputs no starter would send.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError

from crashlab.invariants import check_bank
from crashlab.testing import Lab
from worker.shared import MONEY_TRANSFER_TASK_QUEUE_NAME, MONEY_TRANSFER_WORKFLOW

pytestmark = pytest.mark.stack

TUTORIAL = Path(__file__).parent / "tutorial"


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab(project="crashlab-tutorial") as running:
        yield running


def tutorial_env(lab: Lab) -> dict[str, str]:
    return {**os.environ, "TEMPORAL_ADDRESS": lab.temporal_address, "PYTHONUNBUFFERED": "1"}


def ledger_keys(lab: Lab) -> list[str]:
    movements = httpx.get(f"{lab.bank_url}/ledger", timeout=5).json()["movements"]
    return [str(m["idempotency_key"]) for m in movements]


def test_the_tutorials_starter_run_twice_prints_its_result_and_moves_the_money_once(
    lab: Lab,
) -> None:
    # Its fixed workflow id and reference id ("12345"): the second run is a new run
    # of the same transfer, which the bank's idempotency keys turn into a replay.
    summary = "{'amount': 250, 'receiver': '43-812', 'reference_id': '12345', 'sender': '85-150'}"
    for _ in range(2):
        run = subprocess.run(
            [sys.executable, "run_workflow.py"],
            cwd=TUTORIAL,
            env=tutorial_env(lab),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.stdout.splitlines() == [
            "Result: Transfer complete.",
            f"Withdraw: {summary}",
            f"Deposit: {summary}",
        ], run.stderr

    balances = lab.balances()
    assert (balances["85-150"], balances["43-812"]) == (1750, 250)
    assert [k for k in ledger_keys(lab) if k.startswith("12345-")] == [
        "12345-withdraw",
        "12345-deposit",
    ]


def test_the_labs_starter_prints_what_the_tutorials_worker_returns(lab: Lab) -> None:
    lab.stop("worker")
    worker = subprocess.Popen(
        [sys.executable, "run_worker.py"],
        cwd=TUTORIAL,
        env=tutorial_env(lab),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ref = str(uuid.uuid4())
        # The starter waits (and says so) until a worker polls: no readiness wait needed.
        run = lab.starter("transfer", "--reference-id", ref)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        lab.start("worker")

    assert run.returncode == 0, run.stderr
    # The tutorial's result text, as its worker returned it: its own workflow ran.
    assert re.fullmatch(
        r"Transfer complete \(transaction IDs: W-[0-9a-f-]{36}, D-[0-9a-f-]{36}\)\n", run.stdout
    ), run.stdout
    # Its bank is in its worker's memory: the lab's ledger never saw this transfer.
    assert not [k for k in ledger_keys(lab) if k.startswith(ref)]


async def start_raw(lab: Lab, raw: Any) -> WorkflowHandle[Any, Any]:
    client = await lab.temporal()
    return await client.start_workflow(
        MONEY_TRANSFER_WORKFLOW,
        raw,
        id=f"raw-{uuid.uuid4()}",
        task_queue=MONEY_TRANSFER_TASK_QUEUE_NAME,
    )


async def test_a_raw_client_cannot_move_a_different_amount_than_it_asked(lab: Lab) -> None:
    before = lab.balances()
    raw = {"source_account": "10-001", "target_account": "10-002", "amount": 2.5}
    handle = await start_raw(lab, {**raw, "reference_id": str(uuid.uuid4())})

    async with asyncio.timeout(15):
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()

    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "InvalidTransfer"
    assert "amount must be a whole number of dollars greater than 0" in cause.message
    assert "got 2.5" in cause.message
    assert lab.balances() == before


async def test_a_raw_client_with_a_reference_id_no_header_can_carry_moves_money_once(
    lab: Lab,
) -> None:
    reference_id = f"überweisung\r\n{uuid.uuid4()}"
    raw = {"source_account": "10-003", "target_account": "10-004", "amount": 7}
    handle = await start_raw(lab, {**raw, "reference_id": reference_id})

    async with asyncio.timeout(30):
        result = await handle.result()

    assert result.startswith("Transfer complete.")
    balances = lab.balances()
    assert (balances["10-003"], balances["10-004"]) == (993, 1007)
    async with lab.bank() as bank:
        report = await check_bank(bank, settled=True)
    assert report.ok, report
