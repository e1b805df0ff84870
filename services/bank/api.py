"""The bank's HTTP API: the ledger and the fault switch behind FastAPI.

Every error answer is ``{"error": {"code": ..., "message": ...}}`` with the status
from ``bank.errors.HTTP_STATUS`` (405 keeps its own status, as HTTP requires).
FastAPI's own validation shape never leaks: bad input becomes invalid_amount,
missing_idempotency_key or invalid_request.

A withdraw or deposit is handled in this order: validate the request (bad input
is refused whatever the faults), ask the fault switch, then touch the ledger.
Reads, /health, /ledger, /void, /faults and /metrics are never faulted, so the truth stays
visible and a caller who lost an answer can always settle it.

One bank process serves two listeners (see bank/__main__.py), built from the same
route definitions by ``create_app(listener=...)``:

- the teller API (Listener.TELLER, port 8000 on every interface): what the worker
  and the starter need, and nothing that breaks the bank: no fault switch, no page;
- the control API (Listener.CONTROL, port 8001 on the bank's control network only,
  which is where the host's published port lands): everything, the fault switch
  and the page included. With a control token, changing the switch needs
  ``Authorization: Bearer <token>``; reading it does not.
"""

import asyncio
import contextlib
import hmac
import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from enum import StrEnum
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

from bank.errors import HTTP_STATUS, ErrorCode
from bank.faults import MAX_LATENCY_MS, Action, FaultSpecError, FaultSwitch, FaultTarget, operations
from bank.ledger import DEFAULT_PAGE, MAX_PAGE, Ledger, LedgerError, describe
from bank.metrics import CONTENT_TYPE, BankMetrics, RequestMetrics
from bank.models import (
    MAX_AMOUNT,
    Account,
    Fault,
    FaultMode,
    FaultState,
    Movement,
    Operation,
    Settlement,
)

log = logging.getLogger("bank")

TITLE = "Crash-proof lab bank"
DEFAULT_DB = "/data/bank.db"
# GET /: balances, the latest ledger entries and the fault switch, for people.
PAGE_FILE = os.path.join(os.path.dirname(__file__), "page.html")

Sleep = Callable[[float], Awaitable[None]]


class Listener(StrEnum):
    """Which of the bank's two APIs an app serves."""

    # For the other containers (worker, starter): money and reads, no fault switch.
    TELLER = "teller"
    # For the host (the learner, the levers, the tests): everything.
    CONTROL = "control"


# What a 401 tells the caller about where the control token comes from.
TOKEN_SOURCE = (
    "Send it as 'Authorization: Bearer <token>'. `make up` printed it when it exposed the "
    "lab: it is LAB_TOKEN if you set one, otherwise in build/bank-control-token in the "
    "lab's directory. The make levers (make fault, make faults-clear) send it for you, "
    "and the bank's page takes it from a link ending in #token=<token>."
)
NO_SWITCH_HERE = (
    "The fault switch is not served on this port: this is the bank's teller API "
    "(port 8000), which the worker and the starter use, and no container may change "
    "the switch. The fault switch is served only on the control port, from the host: "
    "the bank's published port (http://localhost:8081 by default), `make fault`, "
    "`make faults` or the bank's page."
)


# --- wire shapes that only the HTTP layer needs -------------------------------------------------


class ErrorDetail(BaseModel):
    code: ErrorCode = Field(description="For programs: what kind of error this is.")
    message: str = Field(description="For people: what is wrong and what to do about it.")


class ErrorResponse(BaseModel):
    """The body of every error answer."""

    error: ErrorDetail


class AmountRequest(BaseModel):
    """The body of a withdraw or deposit."""

    model_config = ConfigDict(extra="forbid")

    # strict: "250", 250.0 and true are mistakes to report, not values to coerce.
    amount: int = Field(
        strict=True,
        gt=0,
        le=MAX_AMOUNT,
        description="Whole dollars, greater than 0.",
        examples=[250],
    )


class FaultSpec(BaseModel):
    """The body of PUT /faults/{target}: one fault (see FaultMode for the modes)."""

    model_config = ConfigDict(extra="forbid")

    mode: FaultMode
    rate: float = Field(
        default=1.0, strict=True, gt=0, le=1, description="Chance per call that it fires."
    )
    latency_ms: int = Field(
        default=0,
        strict=True,
        ge=0,
        le=MAX_LATENCY_MS,
        description="For mode latency: the delay before the bank works normally.",
    )
    jitter_ms: int = Field(
        default=0,
        strict=True,
        ge=0,
        le=MAX_LATENCY_MS,
        description="The delay is uniform in latency_ms +/- jitter_ms (jitter_ms <= latency_ms).",
    )


class Health(BaseModel):
    status: Literal["ok"]


class AccountList(BaseModel):
    accounts: list[Account]
    total: int = Field(description="All the money in the bank: transfers never change it.")


class LedgerPage(BaseModel):
    movements: list[Movement]
    total: int = Field(description="All the money in the bank (the sum of the balances).")


IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        description=(
            "Unique per movement, e.g. '<transfer id>-withdraw'. Repeating a key repeats "
            "the answer without moving money again (replayed=true)."
        ),
        examples=["transfer-1234-withdraw"],
    ),
]
AccountId = Annotated[str, Path(description="An account id.", examples=["85-150"])]
Target = Annotated[FaultTarget, Path(description="withdraw, deposit, or all (both at once).")]


def _errors(*codes: ErrorCode) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for these error codes, grouped by status."""
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(HTTP_STATUS[code], []).append(code.value)
    return {
        status: {"model": ErrorResponse, "description": "error: " + ", ".join(names)}
        for status, names in sorted(by_status.items())
    }


# --- errors ---------------------------------------------------------------------------------------


class _Refused(Exception):
    """The API itself refuses a call (faults, a blank key, a missing token)."""

    def __init__(
        self, code: ErrorCode, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers = headers


class _ClientGone(Exception):
    """The client hung up on a request we were never going to answer."""


def error_response(
    code: ErrorCode,
    message: str,
    *,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code.value, "message": message}},
        status_code=HTTP_STATUS[code] if status is None else status,
        headers=headers,
    )


def _show(value: object) -> str:
    """A value as the client sent it: JSON when possible, so 'true' not 'True'."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


_AMOUNT_EXAMPLE = 'Send a JSON body like {"amount": 250} with Content-Type: application/json.'
_FAULT_EXAMPLE = (
    'Send a JSON body like {"mode": "error", "rate": 0.5} with Content-Type: application/json.'
)


def _example(path: str) -> str:
    return _FAULT_EXAMPLE if path.startswith("/faults") else _AMOUNT_EXAMPLE


def _validation_error(errors: Sequence[Any], path: str) -> tuple[ErrorCode, str]:
    """Turn FastAPI's validation errors into one of our codes and one helpful message."""
    example = _example(path)
    request_problems: list[str] = []
    amount_problem: str | None = None
    key_missing = False
    for error in errors:
        loc = tuple(error.get("loc", ()))
        kind = error.get("type", "")
        value = error.get("input")
        if loc[:1] == ("path",) and loc[-1:] == ("target",):
            targets = ", ".join(t.value for t in FaultTarget)
            return ErrorCode.NOT_FOUND, (
                f"There is no fault target {_show(value)}. Valid targets: {targets}."
            )
        if kind == "json_invalid":
            reason = error.get("ctx", {}).get("error", "")
            request_problems.append(f"The body is not valid JSON ({reason}). {example}")
        elif loc == ("body",):
            if kind == "missing":
                request_problems.append(f"This request needs a body. {example}")
            else:
                request_problems.append(f"The body must be a JSON object. {example}")
        elif loc[:1] == ("body",) and kind == "extra_forbidden":
            request_problems.append(f"Unexpected field {_show(loc[-1])} in the body. {example}")
        elif loc == ("body", "amount") and path.startswith("/accounts"):
            if kind == "missing":
                amount_problem = f"amount is missing. {_AMOUNT_EXAMPLE}"
            else:
                amount_problem = (
                    "amount must be a whole number of dollars greater than 0 "
                    f"(at most {MAX_AMOUNT}), got {_show(value)}"
                )
        elif loc[:1] == ("header",):
            key_missing = True
        else:
            where = ".".join(str(part) for part in loc[1:]) or str(loc[0] if loc else "request")
            # Query and path values are text; show them as typed, not as JSON strings.
            shown = value if loc[:1] in (("query",), ("path",)) else _show(value)
            request_problems.append(f"{where}: {error.get('msg', 'invalid')}, got {shown}")
    if request_problems:
        return ErrorCode.INVALID_REQUEST, " ".join(request_problems)
    if amount_problem is not None:
        return ErrorCode.INVALID_AMOUNT, amount_problem
    if key_missing:
        return ErrorCode.MISSING_IDEMPOTENCY_KEY, _MISSING_KEY
    return ErrorCode.INVALID_REQUEST, "The request is not valid. See GET /docs for the API."


_MISSING_KEY = (
    "The Idempotency-Key header is required, so that a retry cannot move the money twice. "
    "Send a key unique to this movement, e.g. 'Idempotency-Key: transfer-1234-withdraw'."
)


def _allowed_methods(request: Request) -> str:
    """Every method the request's path accepts, e.g. "DELETE, GET" for /faults.

    FastAPI makes one route per method, and Starlette's 405 names only the first
    route that matched the path; RFC 9110 wants all of the resource's methods.
    """
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches(request.scope)
            if match is not Match.NONE:
                methods |= route.methods
    return ", ".join(sorted(methods))


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        code, message = _validation_error(exc.errors(), request.url.path)
        return error_response(code, message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        where = f"{request.method} {request.url.path}"
        teller = request.app.state.listener is Listener.TELLER
        path = request.url.path
        if exc.status_code == 404 and teller and (path == "/faults" or path.startswith("/faults/")):
            return error_response(ErrorCode.NOT_FOUND, f"There is no {where}. {NO_SWITCH_HERE}")
        if exc.status_code == 404:
            reads = (
                "GET /accounts or GET /ledger"
                if teller
                else ("GET /accounts, GET /ledger or GET /faults")
            )
            return error_response(
                ErrorCode.NOT_FOUND,
                f"There is no {where}. Try {reads}; GET /docs shows the whole API.",
            )
        if exc.status_code == 405:
            headers = {name.lower(): value for name, value in (exc.headers or {}).items()}
            allowed = _allowed_methods(request) or headers.get("allow", "another method")
            return error_response(
                ErrorCode.INVALID_REQUEST,
                f"{request.url.path} does not accept {request.method}; it accepts {allowed}.",
                status=405,
                headers={**headers, "allow": allowed},
            )
        if exc.status_code == 400:
            # FastAPI's "error parsing the body": bytes that are not even text.
            return error_response(
                ErrorCode.INVALID_REQUEST,
                f"The body of {where} could not be read as UTF-8 JSON. "
                + _example(request.url.path),
            )
        return error_response(
            ErrorCode.INVALID_REQUEST, f"{where}: {exc.detail}", status=exc.status_code
        )

    @app.exception_handler(LedgerError)
    async def refused_by_ledger(request: Request, exc: LedgerError) -> JSONResponse:
        return error_response(exc.code, exc.message)

    @app.exception_handler(FaultSpecError)
    async def bad_fault(request: Request, exc: FaultSpecError) -> JSONResponse:
        return error_response(exc.code, exc.message)

    @app.exception_handler(_Refused)
    async def refused(request: Request, exc: _Refused) -> JSONResponse:
        return error_response(exc.code, exc.message, headers=exc.headers)

    @app.exception_handler(_ClientGone)
    async def gone(request: Request, exc: _ClientGone) -> Response:
        # Nobody is listening; 499 is nginx's "client closed request", for any proxy log.
        return Response(status_code=499)


async def _never_answer(request: Request, what: str, closing: asyncio.Event) -> None:
    """Hold the request open until the client gives up or the bank shuts down.

    Raises _ClientGone, or _Refused(bank_down) on shutdown: better an honest 503 than
    the bare 500 a server sends for a request it had to cancel.
    """

    async def client_gone() -> None:
        # The body has been read, so the next ASGI message is the client disconnecting.
        # Waiting for it (not sleeping forever) lets the server forget hung requests.
        with contextlib.suppress(Exception):
            while (await request.receive())["type"] != "http.disconnect":
                pass

    gone = asyncio.ensure_future(client_gone())
    stop = asyncio.ensure_future(closing.wait())
    try:
        await asyncio.wait({gone, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        stop.cancel()
    if gone.done() and not gone.cancelled():
        log.info("the client gave up waiting for %s", what)
        raise _ClientGone
    log.info("shutting down: answering the held-up %s with 503", what)
    raise _Refused(
        ErrorCode.BANK_DOWN,
        f"The bank shut down while the fault switch was holding this {what} back. "
        "Retry with the same Idempotency-Key: the ledger will say whether it happened.",
    )


def release_held_requests(app: FastAPI) -> None:
    """Answer every hung or dropped request with 503 bank_down, so shutdown need not wait."""
    closing: asyncio.Event = app.state.closing
    closing.set()


# --- the app ------------------------------------------------------------------------------------


def _control_guard(token: str | None, token_source: str) -> Callable[..., Awaitable[None]]:
    """A dependency for the fault switch's writes: no-op without a token, else Bearer auth.

    HTTPBearer (auto_error=False) documents the scheme in the OpenAPI document and hands
    over the header, so that a missing or malformed header gets our 401, not FastAPI's 403.
    """
    bearer = HTTPBearer(
        auto_error=False,
        scheme_name="ControlToken",
        description="The lab's control token, needed to change the fault switch.",
    )

    async def guard(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        assert token is not None
        given = credentials.credentials if credentials is not None else None
        # compare_digest: the time taken does not tell how much of a guess was right.
        if given is not None and hmac.compare_digest(given.encode(), token.encode()):
            return
        problem = (
            "This call has no control token"
            if given is None
            else "The control token on this call is wrong"
        )
        raise _Refused(
            ErrorCode.UNAUTHORIZED,
            f"{problem}, and changing this lab's fault switch needs one: the lab is "
            "published beyond its own machine, or was started with LAB_TOKEN. Nothing was "
            f"changed. {token_source}",
            headers={"www-authenticate": 'Bearer realm="crashlab bank fault switch"'},
        )

    async def open_to_all() -> None:
        return None

    return open_to_all if token is None else guard


def create_app(
    ledger: Ledger | None = None,
    faults: FaultSwitch | None = None,
    *,
    sleep: Sleep = asyncio.sleep,
    listener: Listener = Listener.CONTROL,
    control_token: str | None = None,
    token_source: str = TOKEN_SOURCE,
    metrics: BankMetrics | None = None,
) -> FastAPI:
    """The bank as an ASGI app: the whole API (CONTROL, the default) or the teller's part.

    Without a ledger, one is opened at $BANK_DB (default /data/bank.db) and closed when
    the app shuts down. ``sleep`` is how latency faults wait: tests pass a recorder.
    One ledger and one fault switch can back both listeners. With ``control_token``,
    PUT and DELETE on the fault switch answer 401 unless the caller sends it as a
    Bearer token; ``token_source`` tells the caller where the token comes from.
    ``metrics`` (GET /metrics) can be shared by both listeners, like the ledger.
    """
    owned = ledger is None
    the_ledger = Ledger(os.environ.get("BANK_DB", DEFAULT_DB)) if ledger is None else ledger
    switch = FaultSwitch() if faults is None else faults
    counted = BankMetrics(total=the_ledger.total) if metrics is None else metrics
    closing = asyncio.Event()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if owned:
            the_ledger.close()

    control = listener is Listener.CONTROL
    description = (
        "A small bank with a real ledger, for learning durable execution by breaking "
        "things. Withdraw and deposit need an Idempotency-Key: a repeated key is "
        "answered from the ledger and moves nothing. When an answer is lost, POST /void "
        "with the same key says whether it moved money, and makes sure it never will "
        "if it has not. "
    )
    if not control:
        description += (
            "This is the teller API, for the lab's containers: the fault switch is served "
            "only on the control port, from the host."
        )
    elif control_token is None:
        description += (
            "PUT /faults/{target} makes the bank flaky; DELETE /faults (or a restart) puts "
            "it right."
        )
    else:
        description += (
            "PUT /faults/{target} makes the bank flaky; DELETE /faults (or a restart) puts "
            "it right. Both need the lab's control token (Authorization: Bearer <token>); "
            "GET /faults does not."
        )
    app = FastAPI(
        title=TITLE if control else f"{TITLE} (teller API)",
        version="1.0.0",
        description=description,
        lifespan=lifespan,
    )
    app.state.closing = closing
    app.state.listener = listener
    app.add_middleware(RequestMetrics, metrics=counted, listener=listener.value)
    _install_error_handlers(app)
    guard = _control_guard(control_token, token_source)
    # The switch's writes: 401 is documented only where it can be answered.
    switch_errors = (
        (ErrorCode.NOT_FOUND, ErrorCode.INVALID_REQUEST)
        if control_token is None
        else (ErrorCode.NOT_FOUND, ErrorCode.INVALID_REQUEST, ErrorCode.UNAUTHORIZED)
    )
    clear_all_errors = () if control_token is None else (ErrorCode.UNAUTHORIZED,)

    def page() -> HTMLResponse:
        """The bank's web page; it polls the API below and drives the fault switch."""
        with open(PAGE_FILE, encoding="utf-8") as html:
            return HTMLResponse(html.read())

    if control:
        app.get("/", include_in_schema=False)(page)

    @app.get("/health", operation_id="health", response_model=Health)
    async def health() -> Health:
        """Is the bank up? Never faulted."""
        return Health(status="ok")

    @app.get("/metrics", include_in_schema=False)
    def get_metrics() -> PlainTextResponse:
        """The bank's metrics for Prometheus (bank/metrics.py). Never faulted."""
        return PlainTextResponse(counted.render(), media_type=CONTENT_TYPE)

    @app.get("/accounts", operation_id="list_accounts", response_model=AccountList)
    def list_accounts() -> AccountList:
        """Every account and its balance, and the bank's total."""
        return AccountList(accounts=the_ledger.accounts(), total=the_ledger.total())

    @app.get(
        "/accounts/{account_id}",
        operation_id="get_account",
        response_model=Account,
        responses=_errors(ErrorCode.UNKNOWN_ACCOUNT, ErrorCode.INVALID_REQUEST),
    )
    def get_account(account_id: AccountId) -> Account:
        """One account's balance."""
        return the_ledger.account(account_id)

    async def move(
        request: Request, operation: Operation, account_id: str, amount: int, key: str
    ) -> Movement:
        what = describe(operation, account_id, amount)
        if not key.strip():
            raise _Refused(ErrorCode.MISSING_IDEMPOTENCY_KEY, _MISSING_KEY)

        decision = switch.decide(operation)
        op = operation.value
        if decision.action is not Action.NONE:
            counted.faults.inc(operation=op, mode=_MODE_OF_ACTION[decision.action])
        if decision.action is Action.DOWN:
            counted.operations.inc(operation=op, outcome=ErrorCode.BANK_DOWN.value)
            log.info("refused %s (key %s): the bank is down (fault switch)", what, key)
            raise _Refused(
                ErrorCode.BANK_DOWN,
                "The bank is down (fault switch). Clear it with DELETE /faults.",
            )
        if decision.action is Action.ERROR:
            log.info("refused %s (key %s): injected fault", what, key)
            counted.operations.inc(operation=op, outcome=ErrorCode.INJECTED_FAULT.value)
            raise _Refused(
                ErrorCode.INJECTED_FAULT,
                f"Injected fault: this {operation.value} has failed and nothing moved. "
                "Retrying with the same Idempotency-Key is safe. "
                f"Clear the fault with DELETE /faults/{operation.value}.",
            )
        if decision.action is Action.DELAY:
            log.info("delaying %s by %.3f s (fault switch)", what, decision.delay_s)
            await sleep(decision.delay_s)
        if decision.action is Action.HANG:
            log.info("hanging %s (key %s): nothing moves, no answer will come", what, key)
            counted.operations.inc(operation=op, outcome="hung")
            await _never_answer(request, what, closing)

        try:
            # SQLite blocks (fsync on commit): keep it off the event loop.
            movement = await asyncio.to_thread(the_ledger.apply, operation, account_id, amount, key)
        except LedgerError as exc:
            log.info("refused %s (key %s): %s", what, key, exc.message)
            counted.operations.inc(operation=op, outcome=exc.code.value)
            if decision.action is Action.DROP_RESPONSE:
                await _never_answer(request, what, closing)
            raise
        if movement.replayed:
            counted.operations.inc(operation=op, outcome="replayed")
            log.info(
                "replayed key %s: nothing moved (%s is ledger seq %d)", key, what, movement.seq
            )
        else:
            counted.operations.inc(operation=op, outcome="moved")
            counted.movements.inc(operation=op)
            counted.moved.inc(amount, operation=op)
            log.info("%s (key %s): balance %d", what, key, movement.balance_after)
        if decision.action is Action.DROP_RESPONSE:
            log.info("dropping the response (fault switch): the client will not hear of %s", what)
            await _never_answer(request, what, closing)
        return movement

    movement_errors = _errors(
        ErrorCode.MISSING_IDEMPOTENCY_KEY,
        ErrorCode.UNKNOWN_ACCOUNT,
        ErrorCode.INSUFFICIENT_FUNDS,
        ErrorCode.INVALID_AMOUNT,
        ErrorCode.INVALID_REQUEST,
        ErrorCode.IDEMPOTENCY_KEY_CONFLICT,
        ErrorCode.KEY_VOIDED,
        ErrorCode.INJECTED_FAULT,
        ErrorCode.BANK_DOWN,
    )

    @app.post(
        "/accounts/{account_id}/withdraw",
        operation_id="withdraw",
        response_model=Movement,
        responses=movement_errors,
    )
    async def withdraw(
        request: Request, account_id: AccountId, body: AmountRequest, key: IdempotencyKey
    ) -> Movement:
        """Take money out of an account, once per Idempotency-Key."""
        return await move(request, Operation.WITHDRAW, account_id, body.amount, key)

    @app.post(
        "/accounts/{account_id}/deposit",
        operation_id="deposit",
        response_model=Movement,
        responses=movement_errors,
    )
    async def deposit(
        request: Request, account_id: AccountId, body: AmountRequest, key: IdempotencyKey
    ) -> Movement:
        """Put money into an account, once per Idempotency-Key."""
        return await move(request, Operation.DEPOSIT, account_id, body.amount, key)

    @app.post(
        "/void",
        operation_id="void",
        response_model=Settlement,
        responses=_errors(ErrorCode.MISSING_IDEMPOTENCY_KEY, ErrorCode.INVALID_REQUEST),
    )
    async def void(key: IdempotencyKey) -> Settlement:
        """Settle a withdraw or deposit whose answer was lost, once and for all.

        Answers the movement the key made, if it made one. If not, voids the key:
        a request with it that is still on its way, or a retry, will be refused
        (key_voided) and move nothing. Never faulted; voiding twice is harmless.
        """
        if not key.strip():
            raise _Refused(ErrorCode.MISSING_IDEMPOTENCY_KEY, _MISSING_KEY)
        movement = await asyncio.to_thread(the_ledger.void, key)
        if movement is None:
            log.info("voided key %s: it never moved money and now never will", key)
        else:
            log.info("settled key %s: it moved money (ledger seq %d)", key, movement.seq)
        return Settlement(idempotency_key=key, movement=movement)

    @app.get(
        "/ledger",
        operation_id="get_ledger",
        response_model=LedgerPage,
        responses=_errors(ErrorCode.INVALID_REQUEST),
    )
    def get_ledger(
        after: Annotated[int, Query(ge=0, description="Only movements after this seq.")] = 0,
        limit: Annotated[
            int, Query(ge=1, le=MAX_PAGE, description="At most this many movements.")
        ] = DEFAULT_PAGE,
    ) -> LedgerPage:
        """The movements, oldest first: page with ?after=<last seq you saw>."""
        return LedgerPage(movements=the_ledger.movements(after, limit), total=the_ledger.total())

    if not control:
        # The teller API ends here: the fault switch below is the host's alone.
        return app

    @app.get("/faults", operation_id="get_faults", response_model=FaultState)
    async def get_faults() -> FaultState:
        """The fault on each operation (null: none). Never needs a token."""
        return switch.state()

    @app.put(
        "/faults/{target}",
        operation_id="set_fault",
        response_model=FaultState,
        responses=_errors(*switch_errors),
        dependencies=[Depends(guard)],
    )
    async def set_fault(target: Target, spec: FaultSpec) -> FaultState:
        """Make withdraw, deposit or both flaky, replacing any fault already there."""
        fault = Fault(
            mode=spec.mode, rate=spec.rate, latency_ms=spec.latency_ms, jitter_ms=spec.jitter_ms
        )
        state = switch.set(operations(target), fault)
        log.info("fault switch: %s now %s", target.value, _describe_fault(fault))
        return state

    @app.delete(
        "/faults/{target}",
        operation_id="clear_fault",
        response_model=FaultState,
        responses=_errors(*switch_errors),
        dependencies=[Depends(guard)],
    )
    async def clear_fault(target: Target) -> FaultState:
        """Take the fault off withdraw, deposit or both."""
        state = FaultState()
        for operation in operations(target):
            state = switch.clear(operation)
        log.info("fault switch: %s cleared", target.value)
        return state

    @app.delete(
        "/faults",
        operation_id="clear_faults",
        response_model=FaultState,
        responses=_errors(*clear_all_errors),
        dependencies=[Depends(guard)],
    )
    async def clear_faults() -> FaultState:
        """Take every fault off: the bank works normally again."""
        log.info("fault switch: everything cleared")
        return switch.clear()

    return app


# The fault mode behind each action of the switch, for bank_faults_applied_total.
_MODE_OF_ACTION = {
    Action.ERROR: FaultMode.ERROR.value,
    Action.DELAY: FaultMode.LATENCY.value,
    Action.HANG: FaultMode.HANG.value,
    Action.DROP_RESPONSE: FaultMode.DROP_RESPONSE.value,
    Action.DOWN: FaultMode.DOWN.value,
}


def _describe_fault(fault: Fault) -> str:
    words = [fault.mode.value]
    if fault.mode is FaultMode.LATENCY:
        words.append(f"{fault.latency_ms}ms +/- {fault.jitter_ms}ms")
    if fault.rate < 1:
        words.append(f"on {fault.rate:.0%} of calls")
    return " ".join(words)
