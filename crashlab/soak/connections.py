"""The Temporal client and the bank client the soak uses, found again when a restart moves
a published port.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio.client import Client

from bank.client import BankClient
from crashlab.levers import in_thread as lever
from crashlab.stack import Stack, StackError
from crashlab.temporal import Unreachable, connect_temporal


class Connections:
    """The Temporal client and the bank client this machine uses.

    With random published ports (a test's lab, --own-lab) a restarted or reconnected
    service comes back on another port: after a failure the address is read again from
    Docker and, if it moved, a new client is made. A paused server hangs a call rather
    than refusing it, so every connect has a deadline.
    """

    RECHECK_EVERY = 2.0  # seconds between two reads of a moved address
    BANK_TIMEOUT = 3.0

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self._client: Client | None = None
        self._address = ""
        self._bank: BankClient | None = None
        self._bank_url = ""
        self._lock = asyncio.Lock()
        self._bank_lock = asyncio.Lock()
        self._next_connect = 0.0
        self._next_check: dict[str, float] = {}

    async def client(self) -> Client:
        async with self._lock:
            if self._client is not None:
                return self._client
            if time.monotonic() < self._next_connect:
                raise Unreachable("Temporal: reconnecting")
            self._next_connect = time.monotonic() + 1.0
            try:
                address = await lever(lambda: self.stack.temporal_address)
            except StackError as err:
                raise Unreachable(str(err)) from err
            self._client = await connect_temporal(address, call_timeout=5)
            self._address = address
            return self._client

    async def bank(self) -> BankClient:
        async with self._bank_lock:
            if self._bank is None:
                try:
                    url = await lever(lambda: self.stack.bank_url)
                except StackError as err:
                    raise Unreachable(str(err)) from err
                self._bank, self._bank_url = (
                    BankClient(url, timeout=self.BANK_TIMEOUT, token=self.stack.token),
                    url,
                )
            return self._bank

    async def temporal_failed(self, *, now: bool = False) -> None:
        """A Temporal call failed (or Temporal came back): reconnect if its port moved."""
        if not self._due("temporal", now):
            return
        try:
            address = await lever(lambda: self.stack.temporal_address)
        except StackError:
            return  # not published right now (killed, cut off): keep what we have
        async with self._lock:
            if address != self._address:
                self._client, self._next_connect = None, 0.0

    async def bank_failed(self, *, now: bool = False) -> None:
        """A bank call failed (or the bank came back): a new client if its port moved."""
        if not self._due("bank", now):
            return
        try:
            url = await lever(lambda: self.stack.bank_url)
        except StackError:
            return
        async with self._bank_lock:
            if url != self._bank_url:
                old, self._bank_url = self._bank, url
                self._bank = BankClient(url, timeout=self.BANK_TIMEOUT, token=self.stack.token)
                if old is not None:
                    await old.aclose()

    def _due(self, what: str, now: bool) -> bool:
        if not now and time.monotonic() < self._next_check.get(what, 0.0):
            return False
        self._next_check[what] = time.monotonic() + self.RECHECK_EVERY
        return True

    async def aclose(self) -> None:
        if self._bank is not None:
            await self._bank.aclose()

    async def call_bank(self, call: Callable[[BankClient], Awaitable[Any]], within: float) -> None:
        """One bank call, tried again (following a moved port) until ``within`` seconds."""
        deadline = time.monotonic() + within
        while True:
            try:
                await call(await self.bank())
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await self.bank_failed()
                await asyncio.sleep(0.5)
