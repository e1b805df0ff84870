"""Reaching Temporal from this machine: one quiet SDK runtime, and a client with a
deadline (a paused server holds a connect forever). `status`, the soak, the panel and
the experiments share it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from temporalio.client import Client
from temporalio.runtime import Runtime

from worker.config import quiet_runtime

T = TypeVar("T")

# How long any one Temporal or bank call may take before we say it does not answer.
CALL_TIMEOUT = 3.0  # seconds
TEMPORAL_SILENT = "Temporal does not answer (paused? killed?)"

_runtime: Runtime | None = None


class Unreachable(Exception):
    """A service did not answer in time; the message says so for people."""


def runtime() -> Runtime:
    """One quiet SDK runtime per process: the core's retry warnings stay off the screen."""
    global _runtime
    if _runtime is None:
        _runtime = quiet_runtime()
    return _runtime


async def within(call: Awaitable[T], call_timeout: float, what: str = TEMPORAL_SILENT) -> T:
    """The call's answer, or Unreachable saying ``what`` after ``call_timeout`` seconds."""
    try:
        return await asyncio.wait_for(call, call_timeout)
    except TimeoutError:
        raise Unreachable(f"{what}: no answer within {call_timeout:g} s") from None


async def connect_temporal(address: str, *, call_timeout: float = CALL_TIMEOUT) -> Client:
    """A client, or Unreachable. Connecting to a paused server hangs: hence the deadline."""
    try:
        return await within(
            Client.connect(address, runtime=runtime()),
            call_timeout,
            f"{TEMPORAL_SILENT} at {address}",
        )
    except RuntimeError as err:  # "Failed client connect: ..." (refused, reset)
        raise Unreachable(f"{TEMPORAL_SILENT} at {address}: {err}") from err
