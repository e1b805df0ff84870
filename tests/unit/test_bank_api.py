"""The bank over HTTP: status codes, the error shape, idempotency, and every fault mode.

Most tests run the app in-process (ASGITransport); the hang and drop tests that need
real client timeouts also run it on a real uvicorn.
"""

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from bank.__main__ import _port, control_token
from bank.api import Listener, create_app, release_held_requests
from bank.errors import HTTP_STATUS, ErrorCode
from bank.faults import FaultSwitch
from bank.ledger import Ledger
from bank.models import Fault, FaultMode, FaultState, Operation

SEED = 1234  # conftest.BANK_SEED: the bank_faults switch's seed
SEED_TOTAL = 10_000
W = "/accounts/85-150/withdraw"
D = "/accounts/43-812/deposit"


def key(name: str) -> dict[str, str]:
    return {"Idempotency-Key": name}


def error_of(response: httpx.Response, code: ErrorCode) -> str:
    """Assert that ``response`` is our error shape with ``code``; return its message."""
    assert response.status_code == HTTP_STATUS[code], response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code.value
    message: str = body["error"]["message"]
    assert message
    return message


def balances(ledger: Ledger) -> dict[str, int]:
    return {a.id: a.balance for a in ledger.accounts()}


async def put_fault(http: httpx.AsyncClient, target: str, **fault: Any) -> dict[str, Any]:
    response = await http.put(f"/faults/{target}", json=fault)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


class _HeldBack(logging.Handler):
    """Sets ``event`` once the bank logs that the fault switch holds a request back.

    The bank may run in another thread (a real uvicorn), hence call_soon_threadsafe.
    """

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith(("hanging ", "dropping the response")):
            self.loop.call_soon_threadsafe(self.event.set)


@pytest.fixture
async def held_back() -> AsyncIterator[asyncio.Event]:
    logger = logging.getLogger("bank")
    handler, level = _HeldBack(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler.event
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


# --- reads ----------------------------------------------------------------------------------------


async def test_health(bank_http: httpx.AsyncClient) -> None:
    response = await bank_http.get("/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_accounts_lists_the_seeded_accounts_and_the_total(
    bank_http: httpx.AsyncClient,
) -> None:
    body = (await bank_http.get("/accounts")).json()
    assert body["total"] == SEED_TOTAL
    accounts = {a["id"]: a["balance"] for a in body["accounts"]}
    assert accounts["85-150"] == 2000
    assert accounts["43-812"] == 0
    assert len(accounts) == 10


async def test_one_account(bank_http: httpx.AsyncClient) -> None:
    response = await bank_http.get("/accounts/85-150")
    assert (response.status_code, response.json()) == (200, {"id": "85-150", "balance": 2000})


async def test_an_unknown_account_is_404(bank_http: httpx.AsyncClient) -> None:
    message = error_of(await bank_http.get("/accounts/99-999"), ErrorCode.UNKNOWN_ACCOUNT)
    assert "99-999" in message and "85-150" in message


async def test_unknown_routes_and_methods_use_the_error_shape(
    bank_http: httpx.AsyncClient,
) -> None:
    message = error_of(await bank_http.get("/nowhere"), ErrorCode.NOT_FOUND)
    assert "GET /nowhere" in message

    response = await bank_http.delete("/accounts")
    # 405 keeps its status (HTTP requires it, with Allow), in our error shape.
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    assert response.json()["error"]["code"] == "invalid_request"
    assert "accepts GET" in response.json()["error"]["message"]


# --- moving money ---------------------------------------------------------------------------------


async def test_withdraw_moves_the_amount_and_writes_one_row(
    bank_http: httpx.AsyncClient, bank_ledger: Ledger
) -> None:
    response = await bank_http.post(W, json={"amount": 250}, headers=key("t1-withdraw"))

    assert response.status_code == 200
    body = response.json()
    assert {k: v for k, v in body.items() if k != "created_at"} == {
        "seq": 1,
        "idempotency_key": "t1-withdraw",
        "operation": "withdraw",
        "account_id": "85-150",
        "amount": 250,
        "balance_after": 1750,
        "replayed": False,
    }
    assert bank_ledger.account("85-150").balance == 1750
    assert [m.idempotency_key for m in bank_ledger.movements()] == ["t1-withdraw"]


async def test_deposit_moves_the_amount_and_writes_one_row(
    bank_http: httpx.AsyncClient, bank_ledger: Ledger
) -> None:
    response = await bank_http.post(D, json={"amount": 250}, headers=key("t1-deposit"))

    assert response.status_code == 200
    assert response.json()["operation"] == "deposit"
    assert response.json()["balance_after"] == 250
    assert bank_ledger.account("43-812").balance == 250
    assert len(bank_ledger.movements()) == 1


async def test_the_same_key_again_replays(
    bank_http: httpx.AsyncClient, bank_ledger: Ledger
) -> None:
    first = (await bank_http.post(W, json={"amount": 250}, headers=key("t1-withdraw"))).json()
    response = await bank_http.post(W, json={"amount": 250}, headers=key("t1-withdraw"))

    assert response.status_code == 200
    assert response.json() == {**first, "replayed": True}
    assert bank_ledger.account("85-150").balance == 1750
    assert len(bank_ledger.movements()) == 1


@pytest.mark.parametrize(
    ("path", "amount"),
    [(W, 300), ("/accounts/10-001/withdraw", 250), ("/accounts/85-150/deposit", 250)],
    ids=["other-amount", "other-account", "other-operation"],
)
async def test_the_same_key_for_another_request_is_a_conflict(
    bank_http: httpx.AsyncClient, bank_ledger: Ledger, path: str, amount: int
) -> None:
    await bank_http.post(W, json={"amount": 250}, headers=key("t1-withdraw"))
    before = balances(bank_ledger)

    response = await bank_http.post(path, json={"amount": amount}, headers=key("t1-withdraw"))

    message = error_of(response, ErrorCode.IDEMPOTENCY_KEY_CONFLICT)
    assert "withdraw $250 from 85-150" in message
    assert balances(bank_ledger) == before
    assert len(bank_ledger.movements()) == 1


async def test_void_answers_the_movement_a_key_made(
    bank_http: httpx.AsyncClient, bank_ledger: Ledger
) -> None:
    done = (await bank_http.post(W, json={"amount": 250}, headers=key("t1-withdraw"))).json()

    response = await bank_http.post("/void", headers=key("t1-withdraw"))

    assert response.status_code == 200
    assert response.json() == {
        "idempotency_key": "t1-withdraw",
        "movement": {**done, "replayed": True},
    }
    # The key is not void: repeating the withdraw still replays it.
    again = await bank_http.post(W, json={"amount": 250}, headers=key("t1-withdraw"))
    assert (again.status_code, again.json()["replayed"]) == (200, True)
    assert bank_ledger.account("85-150").balance == 1750


async def test_a_voided_key_never_moves_money(
    bank_http: httpx.AsyncClient, bank_ledger: Ledger
) -> None:
    first = await bank_http.post("/void", headers=key("t1-withdraw"))
    second = await bank_http.post("/void", headers=key("t1-withdraw"))

    assert first.json() == second.json() == {"idempotency_key": "t1-withdraw", "movement": None}
    response = await bank_http.post(W, json={"amount": 250}, headers=key("t1-withdraw"))
    message = error_of(response, ErrorCode.KEY_VOIDED)
    assert "withdraw $250 from 85-150 was not done" in message
    assert balances(bank_ledger)["85-150"] == 2000
    assert bank_ledger.movements() == []


async def test_void_closes_the_door_on_a_request_still_on_its_way(
    bank_ledger: Ledger, bank_faults: FaultSwitch
) -> None:
    # A withdraw held back by a latency fault is still inside the bank when its
    # caller gives up and voids the key: when it wakes, it must move nothing.
    arrived, wake = asyncio.Event(), asyncio.Event()

    async def held(_: float) -> None:
        arrived.set()
        await wake.wait()

    app = create_app(bank_ledger, bank_faults, sleep=held)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://bank"
    ) as http:
        await put_fault(http, "withdraw", mode="latency", latency_ms=60_000)
        late = asyncio.ensure_future(http.post(W, json={"amount": 250}, headers=key("t1-withdraw")))
        await arrived.wait()  # the withdraw is held back by the fault switch

        voided = await http.post("/void", headers=key("t1-withdraw"))
        wake.set()
        response = await late

    assert voided.json()["movement"] is None
    error_of(response, ErrorCode.KEY_VOIDED)
    assert bank_ledger.movements() == []
    assert balances(bank_ledger)["85-150"] == 2000


async def test_void_needs_a_key(bank_http: httpx.AsyncClient) -> None:
    error_of(await bank_http.post("/void"), ErrorCode.MISSING_IDEMPOTENCY_KEY)
    error_of(await bank_http.post("/void", headers=key(" ")), ErrorCode.MISSING_IDEMPOTENCY_KEY)


async def test_void_is_never_faulted(bank_http: httpx.AsyncClient) -> None:
    await put_fault(bank_http, "all", mode="down")

    response = await bank_http.post("/void", headers=key("t1-deposit"))

    assert response.status_code == 200


async def test_moving_money_on_an_unknown_account_is_404(
    bank_http: httpx.AsyncClient, bank_ledger: Ledger
) -> None:
    response = await bank_http.post(
        "/accounts/99-999/deposit", json={"amount": 5}, headers=key("k")
    )
    error_of(response, ErrorCode.UNKNOWN_ACCOUNT)
    assert bank_ledger.movements() == []


async def test_insufficient_funds_is_409_and_moves_nothing(
    bank_http: httpx.AsyncClient, bank_ledger: Ledger
) -> None:
    response = await bank_http.post(W, json={"amount": 2001}, headers=key("k"))

    message = error_of(response, ErrorCode.INSUFFICIENT_FUNDS)
    assert "$2000" in message and "$2001" in message
    assert balances(bank_ledger)["85-150"] == 2000
    assert bank_ledger.movements() == []


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        ({"amount": -5}, "got -5"),
        ({"amount": 0}, "got 0"),
        ({"amount": 250.5}, "got 250.5"),
        ({"amount": 250.0}, "got 250.0"),
        ({"amount": "250"}, 'got "250"'),
        ({"amount": True}, "got true"),
        ({"amount": None}, "got null"),
        ({"amount": 10**30}, f"got {10**30}"),
        ({}, "amount is missing"),
    ],
)
async def test_invalid_amounts_are_422_invalid_amount(
    bank_http: httpx.AsyncClient, bank_ledger: Ledger, body: dict[str, Any], shown: str
) -> None:
    response = await bank_http.post(W, json=body, headers=key("k"))

    message = error_of(response, ErrorCode.INVALID_AMOUNT)
    assert shown in message
    if "missing" not in shown:
        assert message.startswith("amount must be a whole number of dollars greater than 0")
    assert balances(bank_ledger)["85-150"] == 2000
    assert bank_ledger.movements() == []


@pytest.mark.parametrize(
    ("content", "headers", "says"),
    [
        (b'{"amount": 25', {"content-type": "application/json"}, "not valid JSON"),
        (b"", {}, "needs a body"),
        (b"[250]", {"content-type": "application/json"}, "must be a JSON object"),
        (b'"250"', {"content-type": "application/json"}, "must be a JSON object"),
        (b"amount=250", {"content-type": "application/x-www-form-urlencoded"}, "JSON object"),
        (b'{"amount": 5, "to": "43-812"}', {"content-type": "application/json"}, '"to"'),
        (b"\xff\xfe\x00", {"content-type": "application/json"}, "UTF-8"),
    ],
    ids=["truncated", "empty", "list", "string", "form", "extra-field", "not-utf8"],
)
async def test_malformed_bodies_are_422_invalid_request(
    bank_http: httpx.AsyncClient,
    bank_ledger: Ledger,
    content: bytes,
    headers: dict[str, str],
    says: str,
) -> None:
    response = await bank_http.post(W, content=content, headers={**headers, **key("k")})

    assert says in error_of(response, ErrorCode.INVALID_REQUEST)
    assert bank_ledger.movements() == []


@pytest.mark.parametrize("headers", [{}, key("")], ids=["missing", "empty"])
async def test_a_missing_idempotency_key_is_400(
    bank_http: httpx.AsyncClient, bank_ledger: Ledger, headers: dict[str, str]
) -> None:
    response = await bank_http.post(W, json={"amount": 250}, headers=headers)

    assert "Idempotency-Key" in error_of(response, ErrorCode.MISSING_IDEMPOTENCY_KEY)
    assert bank_ledger.movements() == []


async def test_the_ledger_pages_and_reports_the_total(bank_http: httpx.AsyncClient) -> None:
    for n in range(3):
        await bank_http.post(W, json={"amount": 10}, headers=key(f"t{n}-withdraw"))
        await bank_http.post(D, json={"amount": 10}, headers=key(f"t{n}-deposit"))

    body = (await bank_http.get("/ledger")).json()
    assert [m["seq"] for m in body["movements"]] == [1, 2, 3, 4, 5, 6]
    assert body["total"] == SEED_TOTAL
    page = (await bank_http.get("/ledger", params={"after": 2, "limit": 3})).json()
    assert [m["idempotency_key"] for m in page["movements"]] == [
        "t1-withdraw",
        "t1-deposit",
        "t2-withdraw",
    ]


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 10_001}, {"after": -1}, {"after": "x"}])
async def test_bad_ledger_pages_are_422(
    bank_http: httpx.AsyncClient, params: dict[str, Any]
) -> None:
    message = error_of(await bank_http.get("/ledger", params=params), ErrorCode.INVALID_REQUEST)
    assert next(iter(params)) in message


async def test_transfers_over_http_conserve_the_total(
    bank_http: httpx.AsyncClient, bank_ledger: Ledger
) -> None:
    pairs = [("85-150", "43-812"), ("10-001", "10-002"), ("43-812", "10-003"), ("10-004", "85-150")]
    for n, (source, target) in enumerate(pairs * 3):
        withdrawn = await bank_http.post(
            f"/accounts/{source}/withdraw", json={"amount": 100}, headers=key(f"t{n}-w")
        )
        assert withdrawn.status_code == 200
        deposited = await bank_http.post(
            f"/accounts/{target}/deposit", json={"amount": 100}, headers=key(f"t{n}-d")
        )
        assert deposited.status_code == 200
        assert (await bank_http.get("/accounts")).json()["total"] == SEED_TOTAL

    assert balances(bank_ledger)["10-001"] == 700
    assert len(bank_ledger.movements()) == 24


# --- faults ---------------------------------------------------------------------------------------


async def test_error_fault_is_503_and_moves_nothing(
    bank_http: httpx.AsyncClient, bank_ledger: Ledger
) -> None:
    await put_fault(bank_http, "withdraw", mode="error")

    response = await bank_http.post(W, json={"amount": 250}, headers=key("t1-withdraw"))

    assert "Injected fault: this withdraw has failed" in error_of(
        response, ErrorCode.INJECTED_FAULT
    )
    assert bank_ledger.movements() == []
    # Only withdraw was targeted: deposits still work.
    deposit = await bank_http.post(D, json={"amount": 5}, headers=key("t1-deposit"))
    assert deposit.status_code == 200


async def test_down_fault_is_503_bank_down(
    bank_http: httpx.AsyncClient, bank_ledger: Ledger
) -> None:
    await put_fault(bank_http, "all", mode="down")

    for path in (W, D):
        response = await bank_http.post(path, json={"amount": 5}, headers=key(path))
        assert error_of(response, ErrorCode.BANK_DOWN) == (
            "The bank is down (fault switch). Clear it with DELETE /faults."
        )
    assert bank_ledger.movements() == []


async def test_bad_input_is_refused_before_any_fault(bank_http: httpx.AsyncClient) -> None:
    await put_fault(bank_http, "all", mode="down")

    error_of(
        await bank_http.post(W, json={"amount": -5}, headers=key("k")), ErrorCode.INVALID_AMOUNT
    )
    error_of(await bank_http.post(W, json={"amount": 5}), ErrorCode.MISSING_IDEMPOTENCY_KEY)


async def test_latency_fault_waits_the_decided_delay_then_works(
    bank_http: httpx.AsyncClient, bank_ledger: Ledger, bank_sleeps: list[float]
) -> None:
    await put_fault(bank_http, "deposit", mode="latency", latency_ms=800, jitter_ms=300)
    expected = random.Random(SEED)
    assert expected.random() < 1.0  # the rate check, which always fires at rate 1
    delay = expected.uniform(500, 1100) / 1000

    response = await bank_http.post(D, json={"amount": 250}, headers=key("t1-deposit"))

    assert response.status_code == 200
    assert bank_sleeps == [pytest.approx(delay)]
    assert 0.5 <= bank_sleeps[0] <= 1.1
    assert bank_ledger.account("43-812").balance == 250
    # Withdraw was not targeted: no delay.
    await bank_http.post(W, json={"amount": 5}, headers=key("t1-withdraw"))
    assert len(bank_sleeps) == 1


async def test_a_fault_rate_fires_on_the_calls_the_seeded_rng_picks(
    bank_http: httpx.AsyncClient, bank_ledger: Ledger
) -> None:
    await put_fault(bank_http, "withdraw", mode="error", rate=0.5)
    replay = random.Random(SEED)
    expected = [503 if replay.random() < 0.5 else 200 for _ in range(12)]
    assert 200 in expected and 503 in expected  # the seed exercises both outcomes

    statuses = [
        (await bank_http.post(W, json={"amount": 10}, headers=key(f"t{n}-withdraw"))).status_code
        for n in range(12)
    ]

    assert statuses == expected
    assert len(bank_ledger.movements()) == expected.count(200)
    assert bank_ledger.account("85-150").balance == 2000 - 10 * expected.count(200)


async def test_hang_never_answers_and_moves_nothing(
    bank_http: httpx.AsyncClient, bank_ledger: Ledger
) -> None:
    await put_fault(bank_http, "withdraw", mode="hang")

    request = bank_http.post(W, json={"amount": 250}, headers=key("t1-withdraw"))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(request, timeout=0.3)

    assert bank_ledger.movements() == []
    assert bank_ledger.account("85-150").balance == 2000


async def test_drop_response_applies_the_movement_but_never_answers(
    bank_http: httpx.AsyncClient, bank_ledger: Ledger
) -> None:
    await put_fault(bank_http, "withdraw", mode="drop_response")

    request = bank_http.post(W, json={"amount": 250}, headers=key("t1-withdraw"))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(request, timeout=0.3)

    [movement] = bank_ledger.movements()
    assert (movement.seq, movement.amount, movement.balance_after) == (1, 250, 1750)
    # The client retries with the same key once the network is kind again: a replay.
    await bank_http.delete("/faults")
    retry = await bank_http.post(W, json={"amount": 250}, headers=key("t1-withdraw"))
    assert retry.status_code == 200
    assert (retry.json()["seq"], retry.json()["replayed"]) == (1, True)
    assert bank_ledger.account("85-150").balance == 1750


@pytest.mark.parametrize(("mode", "moved"), [(FaultMode.HANG, 0), (FaultMode.DROP_RESPONSE, 1)])
async def test_shutdown_answers_held_requests_with_503(
    bank_app: FastAPI,
    bank_http: httpx.AsyncClient,
    bank_ledger: Ledger,
    mode: FaultMode,
    moved: int,
    held_back: asyncio.Event,
) -> None:
    await put_fault(bank_http, "withdraw", mode=mode.value)
    held = asyncio.ensure_future(
        bank_http.post(W, json={"amount": 250}, headers=key("t1-withdraw"))
    )
    await asyncio.wait_for(held_back.wait(), timeout=5)
    assert not held.done()

    release_held_requests(bank_app)

    message = error_of(await asyncio.wait_for(held, timeout=2), ErrorCode.BANK_DOWN)
    assert "same Idempotency-Key" in message
    assert len(bank_ledger.movements()) == moved


async def test_hang_on_a_real_server_times_the_client_out_and_blocks_nobody(
    bank_server_url: str, bank_ledger: Ledger, held_back: asyncio.Event
) -> None:
    async with httpx.AsyncClient(base_url=bank_server_url, timeout=0.3) as http:
        await put_fault(http, "withdraw", mode="hang")

        async def hung() -> None:
            with pytest.raises(httpx.ReadTimeout):
                await http.post(W, json={"amount": 250}, headers=key("t1-withdraw"))

        async def meanwhile() -> int:
            await asyncio.wait_for(held_back.wait(), timeout=5)  # while the withdraw hangs
            deposit = await http.post(D, json={"amount": 5}, headers=key("t1-deposit"))
            return deposit.status_code

        _, deposit_status = await asyncio.gather(hung(), meanwhile())

        assert deposit_status == 200
        assert [m.operation for m in bank_ledger.movements()] == [Operation.DEPOSIT]
        assert bank_ledger.account("85-150").balance == 2000


async def test_drop_response_on_a_real_server_then_a_retry_replays(
    bank_server_url: str, bank_ledger: Ledger
) -> None:
    async with httpx.AsyncClient(base_url=bank_server_url, timeout=0.3) as http:
        await put_fault(http, "withdraw", mode="drop_response")

        with pytest.raises(httpx.ReadTimeout):
            await http.post(W, json={"amount": 250}, headers=key("t1-withdraw"))

        assert bank_ledger.account("85-150").balance == 1750
        await http.delete("/faults/withdraw")
        retry = await http.post(W, json={"amount": 250}, headers=key("t1-withdraw"))
        assert (retry.json()["seq"], retry.json()["replayed"]) == (1, True)
        assert len(bank_ledger.movements()) == 1


async def test_faults_never_touch_reads(bank_http: httpx.AsyncClient) -> None:
    await put_fault(bank_http, "all", mode="down")

    for path in ("/health", "/accounts", "/accounts/85-150", "/ledger", "/faults"):
        assert (await bank_http.get(path)).status_code == 200, path


async def test_fault_state_set_and_clear(bank_http: httpx.AsyncClient) -> None:
    empty = {"withdraw": None, "deposit": None}
    assert (await bank_http.get("/faults")).json() == empty

    state = await put_fault(bank_http, "all", mode="latency", latency_ms=200, jitter_ms=50)
    latency = {"mode": "latency", "rate": 1.0, "latency_ms": 200, "jitter_ms": 50}
    assert state == {"withdraw": latency, "deposit": latency}

    state = await put_fault(bank_http, "withdraw", mode="error", rate=0.25)
    error = {"mode": "error", "rate": 0.25, "latency_ms": 0, "jitter_ms": 0}
    assert state == {"withdraw": error, "deposit": latency}
    assert (await bank_http.get("/faults")).json() == state

    cleared = (await bank_http.delete("/faults/deposit")).json()
    assert cleared == {"withdraw": error, "deposit": None}
    await put_fault(bank_http, "deposit", mode="hang")
    assert (await bank_http.delete("/faults/all")).json() == empty

    await put_fault(bank_http, "all", mode="down")
    response = await bank_http.delete("/faults")
    assert (response.status_code, response.json()) == (200, empty)
    assert (await bank_http.get("/faults")).json() == empty


@pytest.mark.parametrize(
    ("fault", "says"),
    [
        ({"mode": "explode"}, "mode"),
        ({}, "mode"),
        ({"mode": "error", "rate": 0}, "rate"),
        ({"mode": "error", "rate": 1.5}, "rate"),
        ({"mode": "error", "rate": "half"}, "rate"),
        ({"mode": "latency"}, "latency_ms > 0"),
        ({"mode": "latency", "latency_ms": 100, "jitter_ms": 200}, "jitter_ms (200)"),
        ({"mode": "latency", "latency_ms": -1}, "latency_ms"),
        ({"mode": "latency", "latency_ms": "100"}, "latency_ms"),
        ({"mode": "latency", "latency_ms": True}, "latency_ms"),
        ({"mode": "error", "sometimes": True}, "sometimes"),
    ],
)
async def test_invalid_fault_specs_are_422(
    bank_http: httpx.AsyncClient, fault: dict[str, Any], says: str
) -> None:
    response = await bank_http.put("/faults/withdraw", json=fault)

    assert says in error_of(response, ErrorCode.INVALID_REQUEST)
    assert (await bank_http.get("/faults")).json() == {"withdraw": None, "deposit": None}


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_an_unknown_fault_target_is_404(bank_http: httpx.AsyncClient, method: str) -> None:
    response = await bank_http.request(method, "/faults/everything", json={"mode": "error"})

    message = error_of(response, ErrorCode.NOT_FOUND)
    assert "withdraw, deposit, all" in message


# --- two listeners, and the control token ---------------------------------------------------------

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SWITCH_WRITES = [
    ("PUT", "/faults/withdraw"),
    ("PUT", "/faults/all"),
    ("DELETE", "/faults/deposit"),
    ("DELETE", "/faults"),
]


@pytest.fixture
def teller_http(bank_ledger: Ledger, bank_faults: FaultSwitch) -> httpx.AsyncClient:
    """The teller API (what the worker and the starter reach), on the same ledger and
    switch as bank_http's control API, as bank/__main__.py wires them."""
    app = create_app(bank_ledger, bank_faults, listener=Listener.TELLER)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bank")


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize("path", ["/faults", "/faults/withdraw", "/faults/all"])
async def test_the_teller_api_has_no_fault_switch(
    teller_http: httpx.AsyncClient, bank_faults: FaultSwitch, method: str, path: str
) -> None:
    async with teller_http:
        response = await teller_http.request(method, path, json={"mode": "down"})

    message = error_of(response, ErrorCode.NOT_FOUND)
    assert "served only on the control port, from the host" in message
    assert bank_faults.state() == FaultState()


async def test_the_teller_api_moves_money_under_the_switch_the_control_api_sets(
    teller_http: httpx.AsyncClient, bank_http: httpx.AsyncClient, bank_ledger: Ledger
) -> None:
    async with teller_http:
        assert (await teller_http.get("/")).status_code == 404  # no page either
        moved = await teller_http.post(W, json={"amount": 5}, headers=key("t1"))
        assert moved.status_code == 200, moved.text
        await put_fault(bank_http, "withdraw", mode="error")
        refused = await teller_http.post(W, json={"amount": 5}, headers=key("t2"))
        error_of(refused, ErrorCode.INJECTED_FAULT)
        voided = await teller_http.post("/void", headers=key("t2"))
        assert voided.json() == {"idempotency_key": "t2", "movement": None}
        accounts = (await teller_http.get("/accounts")).json()
    assert accounts["total"] == SEED_TOTAL - 5
    assert balances(bank_ledger)["85-150"] == 2000 - 5


async def test_each_listener_documents_what_it_serves(
    teller_http: httpx.AsyncClient, bank_http: httpx.AsyncClient
) -> None:
    async with teller_http:
        teller = (await teller_http.get("/openapi.json")).json()
    control = (await bank_http.get("/openapi.json")).json()

    assert set(control["paths"]) - set(teller["paths"]) == {"/faults", "/faults/{target}"}
    assert "teller" in teller["info"]["title"]
    assert "control port" in teller["info"]["description"]
    assert "PUT /faults" not in teller["info"]["description"]
    # No token: nothing says one is needed.
    assert "securitySchemes" not in control.get("components", {})
    assert "401" not in control["paths"]["/faults/{target}"]["put"]["responses"]


@pytest.mark.parametrize("bank_token", [TOKEN])
@pytest.mark.parametrize(("method", "path"), SWITCH_WRITES)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": TOKEN},  # no scheme
        {"Authorization": f"Basic {TOKEN}"},
    ],
    ids=["none", "wrong", "longer", "no-scheme", "basic"],
)
async def test_with_a_token_the_switch_refuses_a_change_without_it(
    bank_http: httpx.AsyncClient,
    bank_faults: FaultSwitch,
    method: str,
    path: str,
    headers: dict[str, str],
) -> None:
    bank_faults.set(tuple(Operation), Fault(FaultMode.LATENCY, latency_ms=10))
    before = bank_faults.state()

    response = await bank_http.request(method, path, json={"mode": "down"}, headers=headers)

    message = error_of(response, ErrorCode.UNAUTHORIZED)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "Nothing was changed" in message
    assert "Authorization: Bearer <token>" in message
    assert "build/bank-control-token" in message and "LAB_TOKEN" in message
    assert bank_faults.state() == before


@pytest.mark.parametrize("bank_token", [TOKEN])
async def test_with_the_token_the_switch_works_and_reads_need_none(
    bank_http: httpx.AsyncClient, bank_faults: FaultSwitch
) -> None:
    # Reads, money and the page stay open: the truth is always visible.
    assert (await bank_http.get("/faults")).status_code == 200
    assert (await bank_http.get("/")).status_code == 200
    moved = await bank_http.post(W, json={"amount": 1}, headers=key("k"))
    assert moved.status_code == 200

    response = await bank_http.put("/faults/deposit", json={"mode": "error"}, headers=AUTH)
    assert response.status_code == 200, response.text
    assert bank_faults.state().deposit == Fault(FaultMode.ERROR)
    cleared = await bank_http.delete("/faults", headers=AUTH)
    assert cleared.json() == {"withdraw": None, "deposit": None}


@pytest.mark.parametrize("bank_token", [TOKEN])
async def test_the_token_is_checked_before_the_body(bank_http: httpx.AsyncClient) -> None:
    """Without the token nothing is said about the request itself."""
    response = await bank_http.put("/faults/nowhere", content=b"not json")

    error_of(response, ErrorCode.UNAUTHORIZED)


@pytest.mark.parametrize("bank_token", [TOKEN])
async def test_with_a_token_the_document_lists_401_for_the_switchs_writes(
    bank_http: httpx.AsyncClient,
) -> None:
    doc = (await bank_http.get("/openapi.json")).json()

    assert doc["components"]["securitySchemes"]["ControlToken"]["scheme"] == "bearer"
    writes = [
        doc["paths"]["/faults/{target}"]["put"],
        doc["paths"]["/faults/{target}"]["delete"],
        doc["paths"]["/faults"]["delete"],
    ]
    for operation in writes:
        assert "unauthorized" in operation["responses"]["401"]["description"]
        assert operation["security"] == [{"ControlToken": []}]
    read = doc["paths"]["/faults"]["get"]
    assert "401" not in read["responses"] and "security" not in read
    assert "control token" in doc["info"]["description"]


@pytest.mark.parametrize(
    ("env", "locked"),
    [
        ({}, False),
        ({"LAB_BIND_ADDRESS": "127.0.0.1"}, False),
        ({"LAB_BIND_ADDRESS": "localhost"}, False),
        ({"LAB_BIND_ADDRESS": "::1"}, False),
        ({"LAB_BIND_ADDRESS": "0.0.0.0"}, True),
        ({"LAB_BIND_ADDRESS": "192.168.1.20"}, True),
    ],
)
def test_an_exposed_bank_without_a_token_locks_its_switch(
    env: dict[str, str], locked: bool
) -> None:
    token, source = control_token(env)
    assert (token is not None) == locked
    if locked:
        assert "started without BANK_CONTROL_TOKEN" in source and "make up" in source
    given, _ = control_token({**env, "BANK_CONTROL_TOKEN": TOKEN})
    assert given == TOKEN


# --- the documentation ----------------------------------------------------------------------------


async def test_openapi_documents_the_api(bank_http: httpx.AsyncClient) -> None:
    doc = (await bank_http.get("/openapi.json")).json()

    assert doc["info"]["title"] == "Crash-proof lab bank"
    assert set(doc["paths"]) == {
        "/health",
        "/accounts",
        "/accounts/{account_id}",
        "/accounts/{account_id}/withdraw",
        "/accounts/{account_id}/deposit",
        "/ledger",
        "/void",
        "/faults",
        "/faults/{target}",
    }
    for operation in ("withdraw", "deposit"):
        post = doc["paths"][f"/accounts/{{account_id}}/{operation}"]["post"]
        [header] = [p for p in post["parameters"] if p["in"] == "header"]
        assert (header["name"], header["required"]) == ("Idempotency-Key", True)
        body = post["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": "#/components/schemas/AmountRequest"}
        assert set(post["responses"]) == {"200", "400", "404", "409", "422", "503"}
        error = post["responses"]["503"]["content"]["application/json"]["schema"]
        assert error == {"$ref": "#/components/schemas/ErrorResponse"}
    assert set(doc["paths"]["/faults/{target}"]) == {"put", "delete"}
    schemas = doc["components"]["schemas"]
    assert schemas["AmountRequest"]["properties"]["amount"]["exclusiveMinimum"] == 0
    assert set(schemas["ErrorDetail"]["properties"]) == {"code", "message"}
    # FastAPI's own 422 shape is never answered, so it must not be documented either.
    assert "HTTPValidationError" not in schemas


# --- wiring ---------------------------------------------------------------------------------------


async def test_without_a_ledger_the_app_opens_bank_db(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BANK_DB", str(tmp_path / "env.db"))
    app = create_app(faults=FaultSwitch())

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bank") as http:
            response = await http.post(D, json={"amount": 7}, headers=key("k"))
            assert response.json()["balance_after"] == 7

    with Ledger(tmp_path / "env.db") as reopened:
        assert reopened.account("43-812").balance == 7


def test_bank_port_must_be_a_port() -> None:
    assert _port("8000") == 8000
    for bad in ("eighty", "0", "70000"):
        with pytest.raises(SystemExit, match="BANK_PORT"):
            _port(bad)
