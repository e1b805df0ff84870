"""The one HTTP client for the bank: the worker's activities, the starter and the tests use it.

What a call can raise, and what it means for a retry:

* ``BankError``: the bank (or something in front of it) answered with an error.
  ``code`` is parsed from the bank's ``{"error": {"code", "message"}}`` body;
  ``permanent`` says whether a retry can help (``bank.errors.PERMANENT``).
  An error answer without that body (a proxy's 502, a crash's bare 500, a wrong
  URL's HTML 404) still becomes a BankError, with a message saying so: 5xx gives
  code ``bank_down`` (transient), 404 gives ``not_found``, any other status
  ``invalid_request``.
* ``httpx.TransportError``: no answer at all (refused, reset, DNS), or
  ``httpx.TimeoutException`` when no answer came within ``timeout`` seconds.
  Transient: the request may or may not have been applied, so retry it with the
  same Idempotency-Key and the bank will replay the original answer.
* ``ValueError`` (a ``pydantic.ValidationError`` or a JSON error): a success answer
  that is not the bank's shape, i.e. a wrong URL or a bug. Retrying will not help.
"""

import asyncio
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter

from bank.errors import PERMANENT, ErrorCode
from bank.models import Account, Fault, FaultMode, FaultState, Movement, Settlement

_ACCOUNT = TypeAdapter(Account)
_ACCOUNTS = TypeAdapter(list[Account])
_MOVEMENT = TypeAdapter(Movement)
_MOVEMENTS = TypeAdapter(list[Movement])
_SETTLEMENT = TypeAdapter(Settlement)
_FAULT_STATE = TypeAdapter(FaultState)


class BankError(Exception):
    """An error answer from the bank."""

    def __init__(self, code: ErrorCode, message: str, status: int) -> None:
        # All three in args, so the exception pickles and copies faithfully.
        super().__init__(code, message, status)
        self.code = code
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return f"{self.status} {self.code.value}: {self.message}"

    @property
    def permanent(self) -> bool:
        """True when the same request would be refused the same way again."""
        return self.code in PERMANENT


def _error(response: httpx.Response) -> BankError:
    status = response.status_code
    try:
        detail = response.json()["error"]
        return BankError(ErrorCode(detail["code"]), str(detail["message"]), status)
    except (ValueError, KeyError, TypeError):
        pass  # not our shape (or a code this client does not know): described below
    if status >= 500:
        code = ErrorCode.BANK_DOWN
    elif status == 404:
        code = ErrorCode.NOT_FOUND
    else:
        code = ErrorCode.INVALID_REQUEST
    request = response.request
    text = response.text[:200].strip()
    return BankError(
        code,
        f"{request.method} {request.url} answered HTTP {status} without the bank's error "
        f"body (is the URL the bank's, or is a proxy in the way?): {text!r}",
        status,
    )


def _path(*parts: str) -> str:
    # safe="": an account id like "a/b" or "x?y" must stay one path segment.
    return "/" + "/".join(quote(part, safe="") for part in parts)


class BankClient:
    """Async client for one bank. ``timeout`` bounds each whole call, in seconds.

    ``token`` is the lab's control token, which an exposed lab's fault switch needs
    (PUT and DELETE /faults); it goes on every request, and the bank ignores it
    where it needs none.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
        token: str | None = None,
    ) -> None:
        self.base_url = base_url
        self.timeout = timeout
        headers = {"Authorization": f"Bearer {token}"} if token else None
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            transport=transport,
            headers=headers,
            # httpx keeps only 20 idle connections by default: with more calls in
            # flight (a worker under load runs up to 100 activities at once), every
            # call beyond that opened and closed a connection of its own.
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, int] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        request = self._http.build_request(method, path, json=json, params=params, headers=headers)
        try:
            # httpx's timeout is per phase (connect, each read...), and a transport
            # may ignore it (ASGITransport does): this deadline bounds the whole call.
            async with asyncio.timeout(self.timeout):
                response = await self._http.send(request)
        except TimeoutError:
            raise httpx.TimeoutException(
                f"The bank did not answer {method} {request.url} within {self.timeout} s. "
                "It may or may not have acted: retry with the same Idempotency-Key.",
                request=request,
            ) from None
        if response.is_error:
            raise _error(response)
        return response.json()

    async def health(self) -> None:
        """Return if the bank is up; raise otherwise."""
        body = await self._call("GET", "/health")
        if body != {"status": "ok"}:
            raise ValueError(f"{self.base_url}/health answered {body!r}, not the bank's 'ok'")

    async def accounts(self) -> list[Account]:
        body = await self._call("GET", "/accounts")
        return _ACCOUNTS.validate_python(body["accounts"])

    async def account(self, account_id: str) -> Account:
        return _ACCOUNT.validate_python(await self._call("GET", _path("accounts", account_id)))

    async def withdraw(self, account_id: str, amount: int, idempotency_key: str) -> Movement:
        return await self._move("withdraw", account_id, amount, idempotency_key)

    async def deposit(self, account_id: str, amount: int, idempotency_key: str) -> Movement:
        return await self._move("deposit", account_id, amount, idempotency_key)

    async def _move(
        self, operation: str, account_id: str, amount: int, idempotency_key: str
    ) -> Movement:
        body = await self._call(
            "POST",
            _path("accounts", account_id, operation),
            json={"amount": amount},
            headers={"Idempotency-Key": idempotency_key},
        )
        return _MOVEMENT.validate_python(body)

    async def void(self, idempotency_key: str) -> Movement | None:
        """The movement ``idempotency_key`` made, or None: then it is void and never will."""
        body = await self._call("POST", "/void", headers={"Idempotency-Key": idempotency_key})
        return _SETTLEMENT.validate_python(body).movement

    async def ledger(self, after: int = 0, limit: int = 1000) -> list[Movement]:
        """Movements with seq > ``after``, oldest first, at most ``limit`` (max 10000)."""
        body = await self._call("GET", "/ledger", params={"after": after, "limit": limit})
        return _MOVEMENTS.validate_python(body["movements"])

    async def faults(self) -> FaultState:
        return _FAULT_STATE.validate_python(await self._call("GET", "/faults"))

    async def set_fault(self, target: str, fault: Fault) -> FaultState:
        """Put ``fault`` on ``target``: withdraw, deposit or all."""
        body = {
            "mode": FaultMode(fault.mode).value,
            "rate": fault.rate,
            "latency_ms": fault.latency_ms,
            "jitter_ms": fault.jitter_ms,
        }
        return _FAULT_STATE.validate_python(
            await self._call("PUT", _path("faults", target), json=body)
        )

    async def clear_faults(self, target: str | None = None) -> FaultState:
        """Clear the fault on ``target`` (withdraw, deposit or all), or every fault."""
        path = "/faults" if target is None else _path("faults", target)
        return _FAULT_STATE.validate_python(await self._call("DELETE", path))
