"""The real stack: built images, real containers, real HTTP between them.

Money moves only between the tutorial's accounts in test_transfer_moves_exactly_250;
the other tests use the load-test accounts (10-00x), so the tutorial's
balances are exact whatever order the tests run in.
"""

import re
import subprocess
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from crashlab.invariants import check_bank
from crashlab.testing import Lab

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab() as running:
        yield running


def movements_for(lab: Lab, reference_id: str) -> list[dict[str, object]]:
    movements = httpx.get(f"{lab.bank_url}/ledger", timeout=5).json()["movements"]
    return [m for m in movements if str(m["idempotency_key"]).startswith(reference_id)]


def test_transfer_moves_exactly_250(lab: Lab) -> None:
    assert lab.balances()["85-150"] == 2000
    assert lab.balances()["43-812"] == 0
    ref = str(uuid.uuid4())

    result = lab.starter("transfer", "--reference-id", ref)

    assert result.returncode == 0, result.stderr
    detail = f"{{'amount': 250, 'receiver': '43-812', 'reference_id': '{ref}', 'sender': '85-150'}}"
    assert result.stdout.splitlines() == [
        "Transfer complete.",
        f"Withdraw: {detail}",
        f"Deposit: {detail}",
    ]
    balances = lab.balances()
    assert (balances["85-150"], balances["43-812"]) == (1750, 250)
    steps = {
        m["idempotency_key"]: (m["operation"], m["account_id"], m["amount"])
        for m in movements_for(lab, ref)
    }
    assert steps == {
        f"{ref}-withdraw": ("withdraw", "85-150", 250),
        f"{ref}-deposit": ("deposit", "43-812", 250),
    }


def test_repeated_withdraw_with_same_key_moves_nothing(lab: Lab) -> None:
    # Not a transfer's key (those end in -withdraw, -deposit, -refund): a
    # movement made by hand, which the ledger checks count as such.
    key = f"{uuid.uuid4()}-by-hand"
    before = lab.balances()["10-001"]
    url = f"{lab.bank_url}/accounts/10-001/withdraw"

    first = httpx.post(url, json={"amount": 30}, headers={"Idempotency-Key": key}, timeout=5)
    again = httpx.post(url, json={"amount": 30}, headers={"Idempotency-Key": key}, timeout=5)

    assert first.status_code == 200 and again.status_code == 200
    assert first.json()["replayed"] is False
    assert again.json()["replayed"] is True
    assert again.json()["seq"] == first.json()["seq"]
    assert lab.balances()["10-001"] == before - 30
    assert len(movements_for(lab, key)) == 1


def test_bad_request_gets_its_documented_error_and_changes_nothing(lab: Lab) -> None:
    before = lab.balances()
    response = httpx.post(
        f"{lab.bank_url}/accounts/10-002/withdraw",
        json={"amount": -5},
        headers={"Idempotency-Key": str(uuid.uuid4())},
        timeout=5,
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_amount"
    assert "-5" in response.json()["error"]["message"]

    unknown = httpx.get(f"{lab.bank_url}/accounts/99-999", timeout=5)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "unknown_account"
    assert lab.balances() == before


def test_starter_refuses_bad_input_before_starting_anything(lab: Lab) -> None:
    before = lab.balances()
    for args, complaint in [
        (("--to", "99-999"), r"99-999"),
        (("--amount", "-5"), r"amount"),
        (("--amount", "12.5"), r"amount"),
        (("--from", "10-003", "--to", "10-003"), r"same account|different"),
    ]:
        result = lab.starter("transfer", *args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert re.search(complaint, result.stderr, re.IGNORECASE), (args, result.stderr)
        assert "Transfer complete." not in result.stdout
    assert lab.balances() == before


def test_starter_reports_a_failed_transfer_and_exits_non_zero(lab: Lab) -> None:
    before = lab.balances()
    ref = str(uuid.uuid4())

    result = lab.starter(
        "transfer", "--from", "10-004", "--to", "10-005", "--amount", "5000", "--reference-id", ref
    )

    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Transfer complete." not in result.stdout
    assert re.search(r"insufficient", result.stdout + result.stderr, re.IGNORECASE)
    assert lab.balances() == before
    assert movements_for(lab, ref) == []


def test_temporal_kill_and_start_loses_no_workflow(lab: Lab) -> None:
    """A transfer waits in Temporal while no worker runs; the server is killed
    and started again; the worker comes back and the transfer completes."""
    ref = str(uuid.uuid4())
    before = lab.balances()
    lab.stop("worker")
    try:
        started = lab.starter(
            "transfer",
            "--from",
            "10-006",
            "--to",
            "10-007",
            "--amount",
            "40",
            "--reference-id",
            ref,
            "--no-wait",
        )
        assert started.returncode == 0, started.stderr
        lab.kill("temporal")
        lab.start("temporal")
    finally:
        lab.start("worker")

    # Re-attaching to the same workflow id waits for the transfer started above.
    finished = lab.starter(
        "transfer", "--from", "10-006", "--to", "10-007", "--amount", "40", "--reference-id", ref
    )

    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.startswith("Transfer complete.")
    after = lab.balances()
    assert after["10-006"] == before["10-006"] - 40
    assert after["10-007"] == before["10-007"] + 40
    assert len(movements_for(lab, ref)) == 2


async def test_the_ledger_proves_every_transfer_whole(lab: Lab) -> None:
    async with lab.bank() as bank:
        report = await check_bank(bank, settled=True)
    assert report.ok, report.lines()
    assert report.counts()["completed"] >= 1


def test_a_bank_killed_mid_write_keeps_every_acknowledged_movement(lab: Lab) -> None:
    """SQLite with synchronous=FULL: what the bank answered 200 for is on disk,
    whatever instant the process dies at."""
    url = f"{lab.bank_url}/accounts/10-008/deposit"
    acknowledged: list[str] = []
    died = False
    deadline = time.monotonic() + 30
    with httpx.Client(timeout=2) as client:
        # Writes until the bank stops answering: the kill lands mid-loop.
        while not died and time.monotonic() < deadline:
            key = f"durable-{uuid.uuid4()}-by-hand"
            try:
                response = client.post(url, json={"amount": 1}, headers={"Idempotency-Key": key})
            except httpx.TransportError:
                died = True
                continue
            assert response.status_code == 200, response.text
            acknowledged.append(key)
            if len(acknowledged) == 50:
                killer = subprocess.Popen(
                    ["docker", "kill", "--signal", "SIGKILL", lab.containers("bank")[0].id],
                    stdout=subprocess.DEVNULL,
                )
    assert died, "the bank was never seen to die mid-loop"
    killer.wait()
    # Docker records the exit a moment after the connection drops.
    while lab.containers("bank")[0].state == "running":
        assert time.monotonic() < deadline, "the killed bank still shows as running"
        time.sleep(0.05)
    lab.start("bank")

    movements = httpx.get(f"{lab.bank_url}/ledger", params={"limit": 10000}, timeout=5).json()
    keys = {m["idempotency_key"] for m in movements["movements"]}
    assert len(acknowledged) > 50
    assert set(acknowledged) <= keys
