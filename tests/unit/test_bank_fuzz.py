"""Fuzz the bank's HTTP API from its own OpenAPI document (schemathesis), faults off.

Schemathesis reads the app's /openapi.json and sends every operation generated
requests, valid and invalid, in-process over ASGI to an app with a fresh ledger
in tmp_path (conftest's bank_app). Besides its built-in checks (no 5xx, status,
content type and body as documented, invalid data refused, 405 with a full
Allow header) each case is held to the bank's own contract:

- every error answer is a status documented for that operation, with the body
  {"error": {"code", "message"}}, a code from ErrorCode, and the status that
  code maps to (405 for a method the path does not have, with Allow);
- a withdraw or deposit that is refused moves nothing, one that succeeds wrote
  exactly the movement it answers (a replay writes nothing), and each refusal
  is true of the ledger (unknown_account, insufficient_funds, key conflict);
- reads tell the truth (balances, totals, ledger pages), a fault set over HTTP
  is what GET /faults shows;
- the ledger's invariants hold after every case (see _check_invariants).

The fault switch (PUT/DELETE /faults) is fuzzed too, but every case is followed
by a reset, so no fault the fuzzer sets (hang, drop_response, latency...) can
block or skew a later call: see _call.

Deterministic: schemathesis' deterministic mode and Hypothesis' derandomize, no
example database. Schemathesis' lazy `from_fixture` loader fails on pytest 9 (it
rewrites the item's private `_nodeid`, which pytest 9 no longer has), so the
schema is loaded eagerly from a throwaway app and each case is sent to the test's
own app (app=bank_app). Under pytest 9 the per-operation items also share one
node id, so a failure names its operation in a note (see _call).
"""

import asyncio
import dataclasses
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter
from schemathesis import APIOperation, BaseSchema, Case, GenerationMode, Response
from schemathesis.config import SchemathesisConfig

from bank.api import create_app
from bank.errors import HTTP_STATUS, ErrorCode
from bank.faults import FaultSwitch, FaultTarget, operations
from bank.ledger import MAX_PAGE, SEED_ACCOUNTS, Ledger
from bank.models import Fault, FaultMode, FaultState, Movement, Operation
from crashlab.invariants import check, split_key

SEED_TOTAL = sum(balance for _, balance in SEED_ACCOUNTS)
MONEY = {"withdraw": Operation.WITHDRAW, "deposit": Operation.DEPOSIT}

# Random text rarely names a real account, reuses a key or picks an amount near a
# balance: these dictionaries make the fuzzer hit the interesting cases often
# (successful movements, replays, key conflicts, insufficient funds), while the
# rest of the draws stay random. Key reuse spans both operations, so a deposit
# may reuse a withdraw's key.
CONFIG = SchemathesisConfig.from_dict(
    {
        "dictionaries": {
            "accounts": {"values": [account_id for account_id, _ in SEED_ACCOUNTS]},
            "keys": {"values": ["k1", "k2", "t1-withdraw", "t1-deposit", "t2-refund"]},
            "amounts": {"values": [1, 5, 250, 999, 1000, 2000, 2001]},
            # Where fixed-width integers end (SQLite's is 64-bit): any integer may be one.
            "int_edges": {"values": [-(2**63) - 1, -(2**63), 2**31, 2**63 - 1, 2**63, 2**64]},
        },
        "parameters": {
            "path.account_id": {"dictionary": "accounts", "probability": 0.8},
            "header.Idempotency-Key": {"dictionary": "keys", "probability": 0.5},
            "body.amount": {"dictionary": "amounts", "probability": 0.5},
        },
        "generation": {
            "deterministic": True,
            "database": "none",
            "dictionaries": {"integer": {"dictionary": "int_edges", "probability": 0.1}},
        },
        # Schema-valid data may still be refused 422 where no JSON Schema can say why:
        # a withdraw or deposit whose key was used for another request (documented,
        # the IETF idempotency-key draft's status), a fault whose fields disagree
        # (jitter_ms > latency_ms), and integral floats (see _integral_float).
        # _check_money and _check_fault_refusal allow no other 422 for valid data.
        "operations": [
            {
                "include-operation-id": ["withdraw", "deposit", "set_fault"],
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", "401", "403", "404", "409", "422", "429"]
                    }
                },
            }
        ],
    }
)


def _load_schema() -> BaseSchema:
    # The bank's own document, served by a throwaway app whose ledger is closed right
    # away; cases always go to the test's app, so nothing can reach this one.
    with Ledger(":memory:") as ledger:
        return schemathesis.openapi.from_asgi(
            "/openapi.json", create_app(ledger, FaultSwitch()), config=CONFIG
        )


schema = _load_schema()
DOC: dict[str, Any] = schema.raw_schema
FuzzCase = Case[APIOperation[Any, Any, Any, Any]]
TestFunction = TypeVar("TestFunction", bound=Callable[..., None])


def each_operation(test: TestFunction) -> TestFunction:
    """schema.parametrize(), typed: one test per operation, with every phase."""
    parametrized: TestFunction = schema.parametrize()(test)
    return parametrized


# Bounded and derandomized: the same cases on every run, about 20 s in all (2 cores).
# function_scoped_fixture: one app and ledger per test on purpose, shared by its
# examples, so the ledger's history (and the invariants over it) keeps growing.
FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# --- what the ledger looked like before a case ----------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    balances: dict[str, int]
    movements: list[Movement]

    @classmethod
    def of(cls, ledger: Ledger) -> "Snapshot":
        movements = ledger.movements(0, MAX_PAGE)
        assert len(movements) < MAX_PAGE, "the fuzz outgrew one ledger page"
        return cls({a.id: a.balance for a in ledger.accounts()}, movements)

    def by_key(self, key: str) -> Movement | None:
        return next((m for m in self.movements if m.idempotency_key == key), None)


# --- the request as it was really sent ------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    method: str
    segments: list[str]  # the path, split and percent-decoded as the app sees it
    query: list[tuple[str, str]]
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or None

    @classmethod
    def of(cls, response: Response) -> "Sent":
        request = response.request
        url = urlsplit(str(request.url))
        raw = request.body if isinstance(request.body, bytes | str) else None
        try:
            body = json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError):
            body = None
        return cls(
            method=str(request.method),
            segments=[unquote(part) for part in url.path.split("/")[1:]],
            query=parse_qsl(url.query, keep_blank_values=True),
            headers={name.lower(): str(value) for name, value in request.headers.items()},
            body=body,
        )

    def param(self, name: str, default: int) -> int:
        # The last value wins, as in Starlette; parsed the way FastAPI parses it.
        values = [value for key, value in self.query if key == name]
        return TypeAdapter(int).validate_python(values[-1]) if values else default


def _positive(case: FuzzCase) -> bool:
    """Schemathesis generated this case to be valid by the schema."""
    return case.meta is not None and case.meta.generation.mode.is_positive


def _integral_float(value: object) -> bool:
    """250.0: a valid "integer" to JSON Schema, which is about values, not spellings,
    so schemathesis sends it as valid data. The bank refuses it on purpose (strict
    fields: 250.0, "250" and true are mistakes to report, see test_bank_api), and no
    schema can forbid the spelling: the one refusal of valid data we let pass."""
    return isinstance(value, float) and value.is_integer()


_MOVEMENT = TypeAdapter(Movement)
_FAULT_STATE = TypeAdapter(FaultState)


# --- the checks -----------------------------------------------------------------------------------


def _check_answer(case: FuzzCase, response: Response, doc: dict[str, Any] = DOC) -> None:
    """Every answer is documented; every error is the bank's shape and a known code."""
    status = response.status_code
    assert status < 500, f"{case.operation.label} answered {status}: {response.text}"
    methods = {m.lower() for m in doc["paths"][case.operation.path]}
    if case.method.lower() not in methods:
        # The coverage phase also tries methods the path does not have.
        assert status == 405, response.text
        assert response.headers.get("allow") == [", ".join(sorted(m.upper() for m in methods))]
    else:
        documented = doc["paths"][case.operation.path][case.method.lower()]["responses"]
        assert str(status) in documented, (
            f"{case.operation.label} answered {status}, not one of {sorted(documented)}: "
            f"{response.text}"
        )
    if status < 400:
        return
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, response.text
    assert isinstance(body["error"], dict) and set(body["error"]) == {"code", "message"}
    code = ErrorCode(body["error"]["code"])
    message = body["error"]["message"]
    assert isinstance(message, str) and message.strip(), response.text
    if status == 405:
        assert code is ErrorCode.INVALID_REQUEST
    else:
        assert HTTP_STATUS[code] == status, response.text
        description = documented[str(status)]["description"]
        assert code.value in description, f"{code.value} is not documented for {status}"


def _check_money(
    case: FuzzCase, response: Response, before: Snapshot, ledger: Ledger, operation: Operation
) -> None:
    """A withdraw or deposit did exactly what it answered, and no more."""
    after = Snapshot.of(ledger)
    new = after.movements[len(before.movements) :]
    assert after.movements[: len(before.movements)] == before.movements, "history was rewritten"
    if response.status_code != 200:
        assert new == [], f"refused with {response.status_code} but moved: {new}"
        assert after.balances == before.balances
    if case.method.upper() != "POST":
        return  # a 405 for another method, checked by _check_answer
    sent = Sent.of(response)
    account_id = sent.segments[1]
    key = sent.headers.get("idempotency-key")
    if response.status_code == 200:
        movement = _MOVEMENT.validate_python(response.json())
        amount = sent.body["amount"]
        assert (movement.operation, movement.account_id, movement.amount) == (
            operation,
            account_id,
            amount,
        )
        assert movement.idempotency_key == key
        original = before.by_key(movement.idempotency_key)
        if movement.replayed:
            assert new == [], "a replay moved money"
            assert original == dataclasses.replace(movement, replayed=False)
        else:
            assert original is None, "a used key moved money again"
            assert new == [movement]
            sign = -1 if operation is Operation.WITHDRAW else 1
            assert movement.balance_after == before.balances[account_id] + sign * amount
        return
    code = ErrorCode(response.json()["error"]["code"])
    if response.status_code == 422 and _positive(case):
        # Valid data: only the ledger's state may refuse it, or strict integers.
        amount = sent.body.get("amount") if isinstance(sent.body, dict) else None
        strict = code is ErrorCode.INVALID_AMOUNT and _integral_float(amount)
        assert code is ErrorCode.IDEMPOTENCY_KEY_CONFLICT or strict, response.text
    if code is ErrorCode.UNKNOWN_ACCOUNT:
        assert account_id not in before.balances
    elif code is ErrorCode.INSUFFICIENT_FUNDS:
        assert operation is Operation.WITHDRAW
        assert sent.body["amount"] > before.balances[account_id]
    elif code is ErrorCode.IDEMPOTENCY_KEY_CONFLICT:
        original = before.by_key(str(key))
        assert original is not None
        request = (operation, account_id, sent.body["amount"])
        assert (original.operation, original.account_id, original.amount) != request


def _check_reads_and_faults(
    case: FuzzCase, response: Response, before: Snapshot, ledger: Ledger, faults: FaultSwitch
) -> None:
    """Reads match the ledger; the fault switch holds what PUT/DELETE said."""
    after = Snapshot.of(ledger)
    assert after == before, f"{case.operation.label} changed the ledger"
    operation_id = case.operation.definition.raw.get("operationId")
    if response.status_code == 422 and operation_id == "set_fault" and _positive(case):
        _check_fault_refusal(Sent.of(response).body, response)
    if response.status_code != 200:
        return
    body = response.json()
    sent = Sent.of(response)
    if operation_id == "list_accounts":
        assert {a["id"]: a["balance"] for a in body["accounts"]} == before.balances
        assert body["total"] == sum(before.balances.values())
    elif operation_id == "get_account":
        assert body == {"id": sent.segments[1], "balance": before.balances[sent.segments[1]]}
    elif operation_id == "get_ledger":
        after_seq, limit = sent.param("after", 0), sent.param("limit", 1000)
        expected = [m for m in before.movements if m.seq > after_seq][:limit]
        assert [_MOVEMENT.validate_python(m) for m in body["movements"]] == expected
        assert body["total"] == sum(before.balances.values())
    elif operation_id in ("get_faults", "set_fault", "clear_fault", "clear_faults"):
        assert body == _FAULT_STATE.dump_python(faults.state(), mode="json")
        targeted = operations(sent.segments[1]) if len(sent.segments) > 1 else tuple(Operation)
        for operation in targeted:
            fault = getattr(faults.state(), operation.value)
            if operation_id == "set_fault":
                spec = sent.body
                assert fault == Fault(
                    mode=FaultMode(spec["mode"]),
                    rate=spec.get("rate", 1.0),
                    latency_ms=spec.get("latency_ms", 0),
                    jitter_ms=spec.get("jitter_ms", 0),
                )
            else:
                # GET /faults: nothing set it; DELETE: it is gone.
                assert fault is None


def _check_fault_refusal(spec: Any, response: Response) -> None:
    """A schema-valid fault is refused only for rules across fields or strict integers."""
    assert isinstance(spec, dict), response.text
    latency, jitter = spec.get("latency_ms", 0), spec.get("jitter_ms", 0)
    explained = (
        (spec.get("mode") == FaultMode.LATENCY.value and latency == 0)
        or jitter > latency
        or _integral_float(latency)
        or _integral_float(jitter)
    )
    assert explained, f"a valid fault {spec} was refused: {response.text}"


def _check_invariants(ledger: Ledger) -> None:
    """The ledger's invariants, as crashlab.invariants proves them, less transfer shape.

    The fuzzer moves money outside any transfer, under any key, including keys that
    look like a transfer's: "t1-withdraw" on a deposit, a lone "t1-deposit", two
    amounts under one reference id. crashlab.invariants reads such keys as transfer
    steps, so its "every transfer is completed, compensated or in flight" check
    (even with settled=False, which only tolerates a lone withdraw) and its money
    conservation (which counts only non-transfer keys as outside money) would blame
    the bank for the fuzzer's keys. So we take its replay, no-negative and
    applied-once checks as they are, and prove conservation directly: the bank
    holds the seed plus every deposit minus every withdraw. When no key happens to
    look like a transfer's, the whole report must be clean.
    """
    accounts = ledger.accounts()
    movements = ledger.movements(0, MAX_PAGE)
    report = check(accounts, movements, settled=False)
    checks = {c.name: c for c in report.checks}
    for name in (
        "the ledger explains every balance",
        "no balance is negative",
        "no step was applied twice",
    ):
        assert checks[name].ok, checks[name].violations
    total = sum(a.balance for a in accounts)
    moved = sum(m.amount if m.operation is Operation.DEPOSIT else -m.amount for m in movements)
    assert total == SEED_TOTAL + moved == ledger.total()
    assert len({m.idempotency_key for m in movements}) == len(movements)
    if not any(split_key(m.idempotency_key) for m in movements):
        assert report.ok, report.lines()


# --- running one case -----------------------------------------------------------------------------


def _reset(faults: FaultSwitch) -> None:
    """Put the bank right after a case: what DELETE /faults does, without a request."""
    faults.clear()


def _call(case: FuzzCase, app: FastAPI, ledger: Ledger, faults: FaultSwitch) -> Response:
    """Send one case and hold the answer and the ledger to the bank's contract.

    Faults are reset after every case (not left for the next, nor excluded from the
    fuzz): PUT /faults/{target} is fuzzed with every mode, and a hang or
    drop_response fault left behind would block the next withdraw forever, a
    latency or error fault would make its answer meaningless. Resetting in
    `finally` keeps every money call fault-free even when a check fails, and the
    first assertion proves no fault leaked in.
    """
    assert faults.state() == FaultState(), "a fault was left on from an earlier case"
    before = Snapshot.of(ledger)
    try:
        response: Response = case.call_and_validate(app=app)
        _check_answer(case, response)
        operation_id = case.operation.definition.raw.get("operationId", "")
        if operation_id in MONEY:
            _check_money(case, response, before, ledger, MONEY[operation_id])
        else:
            _check_reads_and_faults(case, response, before, ledger, faults)
        _check_invariants(ledger)
    except Exception as exc:
        exc.add_note(f"Fuzzing {case.operation.label}: {case.as_curl_command()}")
        raise
    finally:
        _reset(faults)
    return response


# --- the fuzz -------------------------------------------------------------------------------------


@each_operation
@FUZZ
def test_fuzz_each_operation(
    case: FuzzCase, bank_app: FastAPI, bank_ledger: Ledger, bank_faults: FaultSwitch
) -> None:
    """Schema examples, boundary (coverage) cases and fuzzing, per operation."""
    _call(case, bank_app, bank_ledger, bank_faults)


MIXED = st.lists(
    st.one_of(
        schema.as_strategy(GenerationMode.POSITIVE), schema.as_strategy(GenerationMode.NEGATIVE)
    ),
    min_size=1,
    max_size=12,
)


@settings(FUZZ, max_examples=50)
@given(cases=MIXED)
def test_fuzz_interleaved_operations(
    cases: list[FuzzCase], bank_app: FastAPI, bank_ledger: Ledger, bank_faults: FaultSwitch
) -> None:
    """Sequences across all operations on one ledger: reads after writes, money calls
    after fault-switch calls (which must have left no fault behind)."""
    for case in cases:
        _call(case, bank_app, bank_ledger, bank_faults)


# --- the fault switch of an exposed lab: a control token ------------------------------------------

TOKEN = "fuzz-control-token"


def _load_token_schema() -> BaseSchema:
    with Ledger(":memory:") as ledger:
        return schemathesis.openapi.from_asgi(
            "/openapi.json", create_app(ledger, FaultSwitch(), control_token=TOKEN), config=CONFIG
        )


token_schema = _load_token_schema()
TOKEN_DOC: dict[str, Any] = token_schema.raw_schema
SWITCH_WRITES = ("set_fault", "clear_fault", "clear_faults")


@pytest.mark.parametrize(
    "label", ["PUT /faults/{target}", "DELETE /faults/{target}", "DELETE /faults"]
)
def test_fuzz_the_switch_with_a_token(
    label: str, bank_ledger: Ledger, bank_faults: FaultSwitch
) -> None:
    """Each case twice: as generated, without the token, it must be refused 401 (and
    documented) and change nothing; with the token it must do what it does without one.

    Strategies rather than token_schema.parametrize(): its operation filter is not
    applied under pytest 9 (every operation ran), and only the switch's writes differ.
    """
    app = create_app(bank_ledger, bank_faults, control_token=TOKEN)
    operation = token_schema.find_operation_by_label(label)
    assert operation is not None

    @settings(FUZZ, max_examples=60)
    @given(case=operation.as_strategy())
    def run(case: FuzzCase) -> None:
        assert faults_before_is_clear(bank_faults)
        before = Snapshot.of(bank_ledger)
        try:
            refused: Response = case.call(app=app)
            _check_answer(case, refused, TOKEN_DOC)
            assert refused.status_code == 401, refused.text
            assert refused.json()["error"]["code"] == ErrorCode.UNAUTHORIZED.value
            assert bank_faults.state() == FaultState(), "a refused call changed the switch"
            allowed: Response = case.call(app=app, headers={"Authorization": f"Bearer {TOKEN}"})
            _check_answer(case, allowed, TOKEN_DOC)
            assert allowed.status_code != 401, allowed.text
            _check_reads_and_faults(case, allowed, before, bank_ledger, bank_faults)
        except Exception as exc:
            exc.add_note(f"Fuzzing {case.operation.label}: {case.as_curl_command()}")
            raise
        finally:
            _reset(bank_faults)

    run()


def faults_before_is_clear(faults: FaultSwitch) -> bool:
    return faults.state() == FaultState()


def test_the_token_document_differs_only_where_the_token_is_needed() -> None:
    """Both documents describe the same API; the token adds 401 and the scheme to the
    switch's writes, and nothing else."""
    for path, methods in DOC["paths"].items():
        for method, operation in methods.items():
            guarded = TOKEN_DOC["paths"][path][method]
            if operation.get("operationId") in SWITCH_WRITES:
                assert set(guarded["responses"]) == set(operation["responses"]) | {"401"}
                assert guarded["security"] == [{"ControlToken": []}]
            else:
                assert guarded == operation


# --- targeted cases: the fault switch, and what the fuzz found ------------------------------------


def key(name: str) -> dict[str, str]:
    return {"Idempotency-Key": name}


@pytest.mark.parametrize("mode", list(FaultMode))
@pytest.mark.parametrize("target", list(FaultTarget))
async def test_a_fault_set_over_http_is_gone_after_the_reset(
    bank_http: httpx.AsyncClient, bank_faults: FaultSwitch, mode: FaultMode, target: FaultTarget
) -> None:
    """What the fuzz relies on: after _reset, whatever PUT /faults set, money calls
    answer at once and work (a hang left behind would block here)."""
    spec: dict[str, Any] = {"mode": mode.value}
    if mode is FaultMode.LATENCY:
        spec["latency_ms"] = 60_000
    response = await bank_http.put(f"/faults/{target.value}", json=spec)
    assert response.status_code == 200, response.text
    assert bank_faults.state() != FaultState()

    _reset(bank_faults)

    assert (await bank_http.get("/faults")).json() == {"withdraw": None, "deposit": None}
    for path in ("/accounts/85-150/withdraw", "/accounts/43-812/deposit"):
        async with asyncio.timeout(2):
            moved = await bank_http.post(path, json={"amount": 5}, headers=key(path))
        assert moved.status_code == 200, moved.text


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("OPTIONS", "/faults", "DELETE, GET"),
        ("POST", "/faults", "DELETE, GET"),
        ("GET", "/faults/withdraw", "DELETE, PUT"),
        ("PATCH", "/faults/everything", "DELETE, PUT"),
        ("DELETE", "/accounts", "GET"),
        ("GET", "/accounts/85-150/withdraw", "POST"),
    ],
)
async def test_405_allows_every_method_of_the_path(
    bank_http: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    """Found by the fuzz: FastAPI makes one route per method, and Starlette's 405 named
    only the first route's method (OPTIONS /faults said "Allow: GET", hiding DELETE)."""
    response = await bank_http.request(method, path)

    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.json()["error"]["code"] == "invalid_request"
    assert f"it accepts {allow}." in response.json()["error"]["message"]


@pytest.mark.parametrize("after", [2**63 - 1, 2**63, 10**30])
async def test_a_ledger_page_after_a_huge_seq_is_empty(
    bank_http: httpx.AsyncClient, bank_ledger: Ledger, after: int
) -> None:
    """Found by the fuzz: ?after= beyond SQLite's 64-bit INTEGER was a 500
    (OverflowError binding the parameter). No seq is that big: the page is empty."""
    await bank_http.post("/accounts/85-150/withdraw", json={"amount": 5}, headers=key("k"))

    response = await bank_http.get("/ledger", params={"after": after})

    assert response.status_code == 200, response.text
    assert response.json() == {"movements": [], "total": SEED_TOTAL - 5}
    assert bank_ledger.movements(after) == []


def test_the_fuzz_reaches_the_interesting_answers() -> None:
    """The dictionaries above make the fuzz hit more than 404s and 422s: without a
    seeded account, a reused key and a big amount it would rarely move money."""
    seen: Counter[str] = Counter()
    with Ledger(":memory:") as ledger:
        app = create_app(ledger, FaultSwitch())
        for label in (f"POST /accounts/{{account_id}}/{op}" for op in MONEY):
            operation = schema.find_operation_by_label(label)
            assert operation is not None

            @settings(FUZZ, max_examples=50)
            @given(case=operation.as_strategy())
            def run(case: FuzzCase) -> None:
                response = case.call(app=app)
                if response.status_code == 200:
                    seen["replayed" if response.json()["replayed"] else "moved"] += 1
                else:
                    seen[response.json()["error"]["code"]] += 1

            run()
    assert {"moved", "replayed", "insufficient_funds", "idempotency_key_conflict"} <= set(seen)
