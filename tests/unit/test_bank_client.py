"""BankClient against the real app (in-process, and once over a real socket)."""

import asyncio
import pickle
from collections.abc import AsyncIterator, Awaitable

import httpx
import pytest
from fastapi import FastAPI

from bank.client import BankClient, BankError
from bank.errors import ErrorCode
from bank.ledger import Ledger
from bank.models import Account, Fault, FaultMode, FaultState, Movement, Operation


@pytest.fixture
async def client(bank_app: FastAPI) -> AsyncIterator[BankClient]:
    transport = httpx.ASGITransport(app=bank_app)
    async with BankClient("http://bank", timeout=0.3, transport=transport) as bank:
        yield bank


async def refused(code: ErrorCode, status: int, call: Awaitable[object]) -> BankError:
    with pytest.raises(BankError) as caught:
        await call
    assert (caught.value.code, caught.value.status) == (code, status)
    assert caught.value.message
    return caught.value


async def test_health_and_reads(client: BankClient) -> None:
    await client.health()
    accounts = await client.accounts()
    assert Account("85-150", 2000) in accounts
    assert Account("43-812", 0) in accounts
    assert len(accounts) == 10
    assert await client.account("85-150") == Account("85-150", 2000)


async def test_withdraw_deposit_and_replay(client: BankClient, bank_ledger: Ledger) -> None:
    withdrawn = await client.withdraw("85-150", 250, "t1-withdraw")
    deposited = await client.deposit("43-812", 250, "t1-deposit")
    replayed = await client.withdraw("85-150", 250, "t1-withdraw")

    assert isinstance(withdrawn, Movement)
    assert withdrawn.operation is Operation.WITHDRAW
    assert (withdrawn.seq, withdrawn.balance_after, withdrawn.replayed) == (1, 1750, False)
    assert (deposited.seq, deposited.operation, deposited.balance_after) == (2, "deposit", 250)
    assert replayed == Movement(**{**withdrawn.__dict__, "replayed": True})
    assert await client.ledger() == [withdrawn, deposited]
    assert await client.ledger(after=1) == [deposited]
    assert await client.ledger(limit=1) == [withdrawn]
    assert bank_ledger.total() == 10_000


async def test_refusals_become_bank_errors(client: BankClient) -> None:
    unknown = await refused(ErrorCode.UNKNOWN_ACCOUNT, 404, client.account("99-999"))
    assert unknown.permanent
    assert "99-999" in str(unknown) and "404 unknown_account" in str(unknown)

    funds = await refused(ErrorCode.INSUFFICIENT_FUNDS, 409, client.withdraw("43-812", 1, "k1"))
    assert funds.permanent
    amount = await refused(ErrorCode.INVALID_AMOUNT, 422, client.deposit("43-812", 0, "k2"))
    assert "got 0" in amount.message
    await refused(ErrorCode.MISSING_IDEMPOTENCY_KEY, 400, client.deposit("43-812", 5, ""))
    await client.deposit("43-812", 5, "k3")
    conflict = await refused(
        ErrorCode.IDEMPOTENCY_KEY_CONFLICT, 422, client.deposit("43-812", 6, "k3")
    )
    assert conflict.permanent


async def test_account_ids_are_quoted_into_one_path_segment(client: BankClient) -> None:
    error = await refused(ErrorCode.UNKNOWN_ACCOUNT, 404, client.account("no such?account#1"))
    assert "'no such?account#1'" in error.message


async def test_faults_round_trip(client: BankClient) -> None:
    latency = Fault(FaultMode.LATENCY, rate=0.5, latency_ms=200, jitter_ms=20)

    state = await client.set_fault("all", latency)

    assert state == FaultState(withdraw=latency, deposit=latency)
    assert state.withdraw is not None and state.withdraw.mode is FaultMode.LATENCY
    assert await client.faults() == state
    assert await client.clear_faults("withdraw") == FaultState(deposit=latency)
    assert await client.clear_faults() == FaultState()
    await refused(ErrorCode.NOT_FOUND, 404, client.set_fault("everything", latency))
    await refused(
        ErrorCode.INVALID_REQUEST, 422, client.set_fault("all", Fault(FaultMode.ERROR, rate=2))
    )


async def test_injected_faults_are_transient_bank_errors(client: BankClient) -> None:
    await client.set_fault("withdraw", Fault(FaultMode.ERROR))
    await client.set_fault("deposit", Fault(FaultMode.DOWN))

    injected = await refused(ErrorCode.INJECTED_FAULT, 503, client.withdraw("85-150", 1, "k1"))
    down = await refused(ErrorCode.BANK_DOWN, 503, client.deposit("43-812", 1, "k2"))

    assert not injected.permanent and not down.permanent


async def test_a_hang_times_out_within_the_client_timeout(
    client: BankClient, bank_ledger: Ledger
) -> None:
    await client.set_fault("withdraw", Fault(FaultMode.HANG))

    with pytest.raises(httpx.TimeoutException, match=r"within 0.3 s"):
        # The outer guard only turns a broken client deadline into a failure, not a hang.
        await asyncio.wait_for(client.withdraw("85-150", 250, "t1-withdraw"), timeout=3)

    assert bank_ledger.movements() == []
    assert (await client.account("85-150")).balance == 2000


async def test_a_dropped_response_times_out_but_the_retry_replays(
    client: BankClient, bank_ledger: Ledger
) -> None:
    await client.set_fault("withdraw", Fault(FaultMode.DROP_RESPONSE))

    with pytest.raises(httpx.TimeoutException):
        await asyncio.wait_for(client.withdraw("85-150", 250, "t1-withdraw"), timeout=3)

    assert [m.idempotency_key for m in bank_ledger.movements()] == ["t1-withdraw"]
    await client.clear_faults()
    retry = await client.withdraw("85-150", 250, "t1-withdraw")
    assert (retry.seq, retry.replayed, retry.balance_after) == (1, True, 1750)


async def test_a_real_socket_timeout_is_an_httpx_timeout(
    bank_server_url: str, bank_ledger: Ledger
) -> None:
    async with BankClient(bank_server_url, timeout=0.3) as client:
        await client.set_fault("deposit", Fault(FaultMode.HANG))
        with pytest.raises(httpx.TimeoutException):
            await client.deposit("43-812", 5, "k")
        assert await client.account("43-812") == Account("43-812", 0)
    assert bank_ledger.movements() == []


async def test_an_unreachable_bank_is_a_transport_error() -> None:
    # Port 9 (discard) on localhost: nothing listens, so the connection is refused.
    async with BankClient("http://127.0.0.1:9", timeout=2) as client:
        with pytest.raises(httpx.ConnectError):
            await client.health()


def answering(status: int, body: bytes, content_type: str) -> httpx.MockTransport:
    """Something that is not the bank, e.g. a proxy in front of it."""
    return httpx.MockTransport(
        lambda request: httpx.Response(status, content=body, headers={"content-type": content_type})
    )


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (502, b"Bad Gateway", ErrorCode.BANK_DOWN),
        (500, b"Internal Server Error", ErrorCode.BANK_DOWN),
        (404, b"<html>nope</html>", ErrorCode.NOT_FOUND),
        (400, b'{"detail": "bad"}', ErrorCode.INVALID_REQUEST),
        (503, b'{"error": {"code": "on_fire", "message": "new code"}}', ErrorCode.BANK_DOWN),
    ],
)
async def test_error_answers_without_our_shape_still_become_bank_errors(
    status: int, body: bytes, code: ErrorCode
) -> None:
    transport = answering(status, body, "text/plain")
    async with BankClient("http://proxy", transport=transport) as client:
        error = await refused(code, status, client.withdraw("85-150", 1, "k"))
    assert f"HTTP {status} without the bank's error body" in error.message
    assert body.decode()[:20] in error.message


async def test_a_success_that_is_not_the_bank_is_a_value_error() -> None:
    transport = answering(200, b'{"hello": "world"}', "application/json")
    async with BankClient("http://not-the-bank", transport=transport) as client:
        with pytest.raises(ValueError):
            await client.health()
        with pytest.raises(ValueError):
            await client.account("85-150")


def test_bank_errors_survive_pickling() -> None:
    error = BankError(ErrorCode.BANK_DOWN, "down", 503)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.code, copy.message, copy.status, str(copy)) == (
        ErrorCode.BANK_DOWN,
        "down",
        503,
        "503 bank_down: down",
    )
