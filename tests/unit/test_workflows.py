"""The worker's workflows and activities, on a real local Temporal dev server with real Workers.

The bank is the in-process FakeBank, so each test can break it on purpose and
count exactly which calls reached it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import TimerStartedEventAttributes
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from bank.api import create_app
from bank.client import BankClient
from bank.errors import ErrorCode
from bank.ledger import Ledger
from bank.models import Fault, FaultMode
from tests.unit.temporal_env import (
    FakeBank,
    bank_error,
    running_workers,
    shared_temporal,
    step_results,
)
from worker.__main__ import _AlreadyLogged, _LabFormatter, _OneRetryLinePer, run_worker
from worker.activities import BankingActivities, _temporal_error
from worker.print_numbers import PrintNumbersWorkflow, print_number
from worker.shared import PaymentDetails, StepResult, idempotency_key
from worker.workflows import MoneyTransfer


@pytest.fixture(scope="session")
async def client() -> AsyncIterator[Client]:
    async with shared_temporal() as env:
        yield env.client


def payment(
    source: str = "85-150", target: str = "43-812", amount: int = 250, max_attempts: int = 0
) -> PaymentDetails:
    return PaymentDetails(
        source_account=source,
        target_account=target,
        amount=amount,
        reference_id=str(uuid.uuid4()),
        max_attempts=max_attempts,
    )


async def start_transfer(
    client: Client, queue: str, details: PaymentDetails
) -> WorkflowHandle[MoneyTransfer, str]:
    return await client.start_workflow(
        MoneyTransfer.run,
        details,
        id=f"transfer-{details.reference_id}",
        task_queue=queue,
        execution_timeout=timedelta(seconds=30),
    )


async def transfer(client: Client, bank: FakeBank, details: PaymentDetails) -> str:
    async with running_workers(client, bank) as queues:
        return await (await start_transfer(client, queues.transfer, details)).result()


async def transfer_steps(
    client: Client, bank: FakeBank, details: PaymentDetails
) -> dict[str, StepResult]:
    """Run a transfer that must complete; what each of its steps returned."""
    async with running_workers(client, bank) as queues:
        handle = await start_transfer(client, queues.transfer, details)
        await handle.result()
        return await step_results(handle)


async def failed_transfer(client: Client, bank: FakeBank, details: PaymentDetails) -> str:
    """Run a transfer that must fail; return the workflow's failure message."""
    with pytest.raises(WorkflowFailureError) as failure:
        await transfer(client, bank, details)
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.non_retryable
    return cause.message


# --- the money transfer ------------------------------------------------------


async def test_transfer_moves_the_money_exactly_once(client: Client) -> None:
    bank = FakeBank()
    details = payment()

    async with running_workers(client, bank) as queues:
        handle = await start_transfer(client, queues.transfer, details)
        result = await handle.result()

    assert bank.balances == {"85-150": 1750, "43-812": 250}
    assert bank.keys() == [f"{details.reference_id}-withdraw", f"{details.reference_id}-deposit"]
    # The tutorial's success text, which its own starter prints as it is.
    summary = (
        f"{{'amount': 250, 'receiver': '43-812', 'reference_id': '{details.reference_id}', "
        "'sender': '85-150'}"
    )
    assert result == f"Transfer complete.\nWithdraw: {summary}\nDeposit: {summary}"
    # The details stay in the history, as what each step returned.
    steps = await step_results(handle)
    assert steps["withdraw"] == StepResult(
        transaction_seq=1,
        account_id="85-150",
        amount=250,
        idempotency_key=f"{details.reference_id}-withdraw",
    )
    assert steps["deposit"] == StepResult(
        transaction_seq=2,
        account_id="43-812",
        amount=250,
        idempotency_key=f"{details.reference_id}-deposit",
    )


async def test_a_retried_withdraw_replays_at_the_bank_instead_of_moving_money_twice() -> None:
    # What happens when the worker dies after the bank did the withdrawal but
    # before Temporal heard of it: the activity runs again with the same input.
    bank = FakeBank()
    activities = BankingActivities(bank)
    details = payment()

    first = await ActivityEnvironment().run(activities.withdraw, details)
    second = await ActivityEnvironment().run(activities.withdraw, details)

    assert first == second
    assert bank.count("withdraw") == 2
    assert bank.balances["85-150"] == 1750
    assert list(bank.movements) == [f"{details.reference_id}-withdraw"]


async def test_a_deposit_that_fails_for_a_while_completes_once_the_bank_recovers(
    client: Client,
) -> None:
    bank = FakeBank(failing_deposits={"43-812": 2})

    await transfer(client, bank, payment())

    assert bank.count("withdraw") == 1
    assert bank.count("deposit") == 3  # two failures, then success
    assert bank.balances == {"85-150": 1750, "43-812": 250}


async def test_a_deposit_that_fails_for_good_is_refunded_and_the_transfer_fails_clearly(
    client: Client,
) -> None:
    bank = FakeBank(
        failing_deposits={"43-812": math.inf}, failure_message="This deposit has failed."
    )
    details = payment(max_attempts=1)

    message = await failed_transfer(client, bank, details)

    assert message == (
        "Deposit into 43-812 failed: This deposit has failed. $250 was refunded to 85-150."
    )
    # Before refunding, the workflow settles the failed deposit with the bank.
    assert [(op, key) for op, _, key in bank.calls] == [
        ("withdraw", f"{details.reference_id}-withdraw"),
        ("deposit", f"{details.reference_id}-deposit"),
        ("void", f"{details.reference_id}-deposit"),
        ("deposit", f"{details.reference_id}-refund"),
    ]
    assert bank.balances == {"85-150": 2000, "43-812": 0}


async def test_an_unknown_target_account_is_not_retried_and_the_money_is_refunded(
    client: Client,
) -> None:
    bank = FakeBank()

    message = await failed_transfer(client, bank, payment(target="99-999"))

    assert message == (
        "Deposit into 99-999 failed (unknown account): There is no account '99-999'. "
        "Known accounts: 85-150, 43-812. $250 was refunded to 85-150."
    )
    assert bank.count("deposit") == 2  # one deposit attempt (no retries), one refund
    assert bank.count("void") == 1
    assert bank.balances == {"85-150": 2000, "43-812": 0}


@pytest.mark.parametrize("step", ["withdraw", "deposit"])
async def test_a_step_done_but_its_answer_lost_on_the_last_attempt_still_completes(
    client: Client, step: str
) -> None:
    # With one attempt, the bank moves the money but its answer never arrives: the
    # attempt times out. Refunding or giving up now would create or lose money; the
    # workflow settles the step with the bank, learns it happened, and carries on.
    bank = FakeBank(lost_answers={step: 1})
    details = payment(max_attempts=1)

    steps = await transfer_steps(client, bank, details)

    assert bank.balances == {"85-150": 1750, "43-812": 250}
    assert list(bank.movements) == [
        f"{details.reference_id}-withdraw",
        f"{details.reference_id}-deposit",
    ]
    assert [(op, key) for op, _, key in bank.calls if op == "void"] == [
        ("void", f"{details.reference_id}-{step}")
    ]
    assert bank.voided == set()
    # The lost step is known from settling it; the other step answered itself.
    other = "deposit" if step == "withdraw" else "withdraw"
    assert steps["settle"].idempotency_key == f"{details.reference_id}-{step}"
    assert steps[other].idempotency_key == f"{details.reference_id}-{other}"
    assert {steps["settle"].transaction_seq, steps[other].transaction_seq} == {1, 2}


async def test_a_step_whose_answer_is_lost_and_that_never_happened_moves_nothing(
    client: Client,
) -> None:
    # Unreachable bank, one attempt: the withdraw's fate is unknown until the bank
    # answers the void. The workflow waits for that answer, then fails cleanly.
    bank = FakeBank(unreachable=True)
    details = payment(max_attempts=1)
    async with running_workers(client, bank) as queues:
        handle = await start_transfer(client, queues.transfer, details)
        await _activity_attempts(handle, "settle", at_least=2)
        bank.unreachable = False
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()

    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.message.startswith("Withdrawal from 85-150 failed: Cannot reach the bank")
    assert cause.message.endswith("Nothing was moved.")
    assert bank.voided == {f"{details.reference_id}-withdraw"}
    assert bank.movements == {}
    assert bank.balances == {"85-150": 2000, "43-812": 0}


@pytest.mark.parametrize(
    ("source", "amount", "expected"),
    [
        (
            "99-999",
            250,
            "Withdrawal from 99-999 failed (unknown account): There is no account '99-999'. "
            "Known accounts: 85-150, 43-812. Nothing was moved.",
        ),
        (
            "85-150",
            5000,
            "Withdrawal from 85-150 failed (insufficient funds): Account 85-150 has $2000, so it "
            "cannot withdraw $5000. Nothing was moved. Withdraw at most the balance, or deposit "
            "first.",
        ),
    ],
    ids=["unknown-source", "insufficient-funds"],
)
async def test_a_withdraw_the_bank_refuses_fails_at_once_and_moves_nothing(
    client: Client, source: str, amount: int, expected: str
) -> None:
    bank = FakeBank()

    message = await failed_transfer(client, bank, payment(source=source, amount=amount))

    assert message == expected
    # No retries and no deposit; the refused key is voided so it can never move money.
    assert [op for op, _, _ in bank.calls] == ["withdraw", "void"]
    assert bank.balances == {"85-150": 2000, "43-812": 0}


# --- the activities on their own ---------------------------------------------


@pytest.mark.parametrize(
    ("code", "error_type", "retryable"),
    [
        (ErrorCode.UNKNOWN_ACCOUNT, "InvalidAccountError", False),
        (ErrorCode.INSUFFICIENT_FUNDS, "InsufficientFundsError", False),
        (ErrorCode.INVALID_AMOUNT, "InvalidRequestError", False),
        (ErrorCode.IDEMPOTENCY_KEY_CONFLICT, "InvalidRequestError", False),
        (ErrorCode.INJECTED_FAULT, "BankUnavailableError", True),
        (ErrorCode.BANK_DOWN, "BankUnavailableError", True),
    ],
)
def test_bank_errors_are_retryable_only_when_a_retry_can_help(
    code: ErrorCode, error_type: str, retryable: bool
) -> None:
    error = _temporal_error(bank_error(code, "The bank says no."))

    assert (error.type, error.non_retryable, error.message) == (
        error_type,
        not retryable,
        "The bank says no.",
    )
    # The refund never gives up, whatever the bank says.
    assert not _temporal_error(bank_error(code, "no"), always_retry=True).non_retryable


async def test_a_bank_that_does_not_answer_is_a_retryable_error() -> None:
    bank = FakeBank(unreachable=True)

    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(BankingActivities(bank).deposit, payment())

    assert raised.value.type == "BankUnreachableError"
    assert not raised.value.non_retryable
    assert "Connection refused" in raised.value.message


async def test_the_buggy_deposit_fails_with_the_tutorials_message() -> None:
    activities = BankingActivities(FakeBank())

    with pytest.raises(RuntimeError, match=r"^This deposit has failed\.$") as raised:
        await activities.deposit_that_fails("43-812", 250, "key")

    error = _temporal_error(raised.value)
    assert error.message == "This deposit has failed."
    assert not error.non_retryable  # so the transfer waits for the fix


async def test_activities_log_the_tutorials_lines(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="temporalio.activity")
    bank = FakeBank(failing_deposits={"43-812": 1}, failure_message="This deposit has failed.")
    activities = BankingActivities(bank)
    details = payment()

    await ActivityEnvironment().run(activities.withdraw, details)
    with pytest.raises(ApplicationError):
        await ActivityEnvironment().run(activities.deposit, details)
    await ActivityEnvironment().run(activities.refund, details)

    # Without the worker's logging setup, the SDK appends the activity's details.
    lines = [
        record.getMessage().split(" ({")[0]
        for record in caplog.records
        if record.name == "temporalio.activity"
    ]
    assert lines == [
        "Withdrawing $250 from account 85-150.",
        "Depositing $250 into account 43-812.",
        "Deposit failed: This deposit has failed.",
        "Refunding $250 to account 85-150.",
    ]


async def test_an_activity_heartbeats_while_it_waits_for_the_bank() -> None:
    # Heartbeats are how Temporal notices within 2 s that a killed worker's
    # activity is gone; a slow bank call must not look like a dead worker.
    heartbeats: list[object] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: heartbeats.append(details)

    await env.run(BankingActivities(FakeBank(delay=1.2)).withdraw, payment())

    assert 1 <= len(heartbeats) <= 2  # at 0.5 s and (unless the machine is slow) 1 s


async def test_a_quick_bank_call_sends_no_heartbeat() -> None:
    # The server counts the start as a heartbeat; one more for a call that takes
    # milliseconds would only be a write on the server per step.
    heartbeats: list[object] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: heartbeats.append(details)

    await env.run(BankingActivities(FakeBank()).withdraw, payment())

    assert heartbeats == []


# --- the print-numbers workflow ------------------------------------------------


@contextlib.asynccontextmanager
async def print_numbers_worker(client: Client) -> AsyncIterator[str]:
    """A worker for module 1's workflow, as run_workflow.py runs one; yields its queue."""
    queue = f"print-{uuid.uuid4()}"
    async with Worker(
        client, task_queue=queue, workflows=[PrintNumbersWorkflow], activities=[print_number]
    ):
        yield queue


async def test_print_numbers_prints_one_to_ten_in_order(
    client: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    async with print_numbers_worker(client) as queue:
        handle = await client.start_workflow(
            PrintNumbersWorkflow.run,
            0.01,
            id=f"print-numbers-{uuid.uuid4()}",
            task_queue=queue,
            execution_timeout=timedelta(seconds=30),
        )
        result = await handle.result()

    assert result == "Workflow completed"
    assert capsys.readouterr().out.split() == [str(n) for n in range(1, 11)]
    events = [event async for event in handle.fetch_history_events()]
    results = [
        e.activity_task_completed_event_attributes.result.payloads[0].data
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
    ]
    assert results == [f'"{n}"'.encode() for n in range(1, 11)]
    timers = [e for e in events if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED]
    assert len(timers) == 9  # between the numbers, not after the last


async def test_print_numbers_started_without_arguments_pauses_three_seconds(
    client: Client,
) -> None:
    async with print_numbers_worker(client) as queue:
        handle: WorkflowHandle[PrintNumbersWorkflow, str] = await client.start_workflow(
            PrintNumbersWorkflow.run,
            id=f"print-numbers-{uuid.uuid4()}",
            task_queue=queue,
        )
        try:
            timer = await _first_timer(handle)
        finally:
            await handle.terminate("test done")

    assert timer.start_to_fire_timeout.ToTimedelta() == timedelta(seconds=3)


async def _first_timer(
    handle: WorkflowHandle[PrintNumbersWorkflow, str],
) -> TimerStartedEventAttributes:
    async with asyncio.timeout(10):
        while True:
            async for event in handle.fetch_history_events():
                if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
                    return event.timer_started_event_attributes
            await asyncio.sleep(0.1)


# --- against the real bank app (in-process, through its HTTP client) ---------


@pytest.fixture
async def real_bank(tmp_path: Path) -> AsyncIterator[BankClient]:
    with Ledger(tmp_path / "bank.db") as ledger:
        transport = httpx.ASGITransport(app=create_app(ledger=ledger))
        async with BankClient("http://bank", transport=transport) as bank:
            yield bank


async def balances(bank: BankClient) -> dict[str, int]:
    return {a.id: a.balance for a in await bank.accounts() if a.id in ("85-150", "43-812")}


async def test_a_transfer_through_the_real_bank_moves_the_money_once(
    client: Client, real_bank: BankClient
) -> None:
    details = payment()
    async with running_workers(client, real_bank) as queues:
        handle = await start_transfer(client, queues.transfer, details)
        await handle.result()
        steps = await step_results(handle)

    assert await balances(real_bank) == {"85-150": 1750, "43-812": 250}
    ledger = await real_bank.ledger()
    assert [(m.idempotency_key, m.account_id, m.amount) for m in ledger] == [
        (f"{details.reference_id}-withdraw", "85-150", 250),
        (f"{details.reference_id}-deposit", "43-812", 250),
    ]
    assert steps["deposit"].transaction_seq == ledger[1].seq


async def test_a_repeated_withdraw_is_a_replay_at_the_real_bank(real_bank: BankClient) -> None:
    activities = BankingActivities(real_bank)
    details = payment()

    first = await ActivityEnvironment().run(activities.withdraw, details)
    second = await ActivityEnvironment().run(activities.withdraw, details)

    assert first == second
    assert len(await real_bank.ledger()) == 1
    assert await balances(real_bank) == {"85-150": 1750, "43-812": 0}


# --- input from any client: what the workflow cannot act on ends it at once ------------

VALID_INPUT = {
    "source_account": "85-150",
    "target_account": "43-812",
    "amount": 250,
    "reference_id": "hostile",
}
# How long a refused input may take to end the workflow: one workflow task.
ENDS_WITHIN = 10  # seconds


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({**VALID_INPUT, "amount": 2.5}, "amount must be a whole number of dollars"),
        ({**VALID_INPUT, "amount": "250"}, "amount must be a whole number of dollars"),
        ({**VALID_INPUT, "amount": -250}, "got -250"),
        ({**VALID_INPUT, "amount": True}, "got True"),
        (
            {k: v for k, v in VALID_INPUT.items() if k != "amount"},
            "amount is missing: the fields are source_account, target_account, amount, "
            "reference_id and, optionally, max_attempts",
        ),
        ({**VALID_INPUT, "amont": 250}, "Unknown field 'amont'"),
        (None, "The input must be one object with the fields source_account"),
        ([VALID_INPUT], "got a list"),
        ("85-150 to 43-812", "got a string"),
        ({**VALID_INPUT, "max_attempts": -3}, "max_attempts must be a whole number from 0"),
        ({**VALID_INPUT, "reference_id": ""}, "reference_id must be a non-empty string"),
        ({**VALID_INPUT, "target_account": "85-150"}, "the same account (85-150)"),
    ],
    ids=[
        "fractional-amount",
        "amount-as-text",
        "negative-amount",
        "amount-true",
        "missing-field",
        "unknown-field",
        "null",
        "list",
        "string",
        "negative-attempts",
        "empty-reference",
        "same-accounts",
    ],
)
async def test_an_input_the_workflow_cannot_act_on_fails_it_at_once_and_moves_nothing(
    client: Client, raw: object, message: str
) -> None:
    # Started the way any Temporal client can, with the workflow's name and raw JSON:
    # the starter's checks are not in the way.
    bank = FakeBank()
    async with running_workers(client, bank) as queues:
        handle: WorkflowHandle[Any, Any] = await client.start_workflow(
            "MoneyTransfer", raw, id=f"hostile-{uuid.uuid4()}", task_queue=queues.transfer
        )
        async with asyncio.timeout(ENDS_WITHIN):
            with pytest.raises(WorkflowFailureError) as failure:
                await handle.result()

    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "InvalidTransfer" and cause.non_retryable
    assert message in cause.message
    assert cause.message.startswith("Invalid transfer: ")
    assert cause.message.endswith("Nothing was moved.")
    assert bank.calls == []
    assert bank.balances == {"85-150": 2000, "43-812": 0}


async def test_a_workflow_started_with_no_input_at_all_fails_at_once(client: Client) -> None:
    bank = FakeBank()
    async with running_workers(client, bank) as queues:
        handle: WorkflowHandle[Any, Any] = await client.start_workflow(
            "MoneyTransfer", id=f"hostile-{uuid.uuid4()}", task_queue=queues.transfer
        )
        async with asyncio.timeout(ENDS_WITHIN):
            with pytest.raises(WorkflowFailureError) as failure:
                await handle.result()

    assert "got null (no input)" in str(failure.value.cause)
    assert bank.calls == []


@pytest.mark.parametrize(
    "reference_id",
    ["überweisung-7", "12345\r\nX-Injected: 1", "r" * 100_000, "a b/c?d#e"],
    ids=["non-ascii", "line-break", "100000-characters", "spaces-and-slashes"],
)
async def test_any_reference_id_gives_safe_keys_and_moves_the_money_once(
    client: Client, real_bank: BankClient, reference_id: str
) -> None:
    # The real bank app, through its HTTP client: the keys travel in a header.
    raw = {**VALID_INPUT, "reference_id": reference_id}
    async with running_workers(client, real_bank) as queues:
        handle: WorkflowHandle[Any, str] = await client.start_workflow(
            "MoneyTransfer", raw, id=f"hostile-{uuid.uuid4()}", task_queue=queues.transfer
        )
        async with asyncio.timeout(ENDS_WITHIN):
            result = await handle.result()

    assert result.startswith("Transfer complete.")
    assert await balances(real_bank) == {"85-150": 1750, "43-812": 250}
    ledger = await real_bank.ledger()
    keys = [m.idempotency_key for m in ledger]
    assert keys == [
        idempotency_key(reference_id, "withdraw"),
        idempotency_key(reference_id, "deposit"),
    ]
    assert all(len(key) < 120 and key.isascii() and key.isprintable() for key in keys)


def test_idempotency_keys_keep_plain_reference_ids_readable_and_tell_others_apart() -> None:
    assert idempotency_key("12345", "deposit") == "12345-deposit"
    uuid_ref = str(uuid.uuid4())
    assert idempotency_key(uuid_ref, "withdraw") == f"{uuid_ref}-withdraw"
    # Two references that differ only where a header could not carry them stay apart.
    assert idempotency_key("ü", "withdraw") != idempotency_key("ý", "withdraw")
    assert idempotency_key("r" * 101, "withdraw") != idempotency_key("r" * 102, "withdraw")


async def test_a_transfer_run_twice_with_one_reference_id_moves_the_money_once(
    client: Client, real_bank: BankClient
) -> None:
    # The tutorial's starter does this: the same workflow id and reference id
    # ("12345") every time, a new run once the first has completed.
    raw = {**VALID_INPUT, "reference_id": "12345"}
    async with running_workers(client, real_bank) as queues:
        for _ in range(2):
            result = await client.execute_workflow(
                "MoneyTransfer",
                raw,
                id="pay-invoice-701",
                task_queue=queues.transfer,
                result_type=str,
            )
            assert result.startswith("Transfer complete.")

    assert await balances(real_bank) == {"85-150": 1750, "43-812": 250}
    assert len(await real_bank.ledger()) == 2


async def test_the_refund_waits_out_a_broken_bank_then_restores_the_money(
    client: Client, real_bank: BankClient
) -> None:
    # With every deposit failing, the refund (a deposit too) cannot succeed
    # either: it must keep trying until the bank works again, not give up.
    await real_bank.set_fault("deposit", Fault(mode=FaultMode.ERROR))
    details = payment(max_attempts=2)
    async with running_workers(client, real_bank) as queues:
        handle = await start_transfer(client, queues.transfer, details)
        await _activity_attempts(handle, "refund", at_least=2)
        await real_bank.clear_faults()
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()

    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.message.startswith("Deposit into 43-812 failed: ")
    assert cause.message.endswith(" $250 was refunded to 85-150.")
    assert await balances(real_bank) == {"85-150": 2000, "43-812": 0}
    assert [m.idempotency_key for m in await real_bank.ledger()] == [
        f"{details.reference_id}-withdraw",
        f"{details.reference_id}-refund",
    ]


async def _activity_attempts(
    handle: WorkflowHandle[MoneyTransfer, str], activity: str, at_least: int
) -> None:
    """Wait until the workflow's pending ``activity`` is on attempt ``at_least`` or later."""
    async with asyncio.timeout(15):
        while True:
            pending = (await handle.describe()).raw_description.pending_activities
            if any(a.activity_type.name == activity and a.attempt >= at_least for a in pending):
                return
            await asyncio.sleep(0.2)


# --- python -m worker --------------------------------------------------------


async def test_the_worker_process_marks_itself_ready_and_stops_gracefully(
    client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ready = tmp_path / "worker-ready"
    monkeypatch.setenv("TEMPORAL_ADDRESS", client.service_client.config.target_host)
    monkeypatch.setenv("TEMPORAL_NAMESPACE", client.namespace)
    monkeypatch.setenv("BANK_URL", "http://127.0.0.1:9")  # no bank: the worker starts anyway
    monkeypatch.setenv("WORKER_READY_FILE", str(ready))
    stop = asyncio.Event()

    running = asyncio.create_task(run_worker(stop))
    async with asyncio.timeout(15):
        while not ready.exists():
            assert not running.done(), f"the worker exited with {running.result()}"
            await asyncio.sleep(0.1)
    stop.set()

    assert await asyncio.wait_for(running, timeout=15) == 0
    assert not ready.exists()


def test_log_lines_look_like_the_tutorials() -> None:
    formatter = _LabFormatter()
    record = logging.LogRecord("x", logging.ERROR, "", 0, "Deposit failed: no.", None, None)
    record.created = datetime(2024, 2, 12, 10, 59, 9).timestamp()

    assert formatter.format(record) == "2024/02/12 10:59:09 ERROR Deposit failed: no."
    record.levelno, record.levelname = logging.INFO, "INFO"
    assert formatter.format(record) == "2024/02/12 10:59:09 Deposit failed: no."


def test_the_sdk_traceback_is_dropped_only_for_errors_the_activities_already_logged() -> None:
    def sdk_record(error: Exception) -> logging.LogRecord:
        record = logging.LogRecord(
            "temporalio.activity",
            logging.WARNING,
            "",
            0,
            "Completing activity as failed",
            None,
            (type(error), error, None),
        )
        record.__dict__["__temporal_error_identifier"] = "ActivityFailure"
        return record

    keep = _AlreadyLogged()
    assert not keep.filter(sdk_record(ApplicationError("Deposit failed: no.")))
    assert keep.filter(sdk_record(KeyError("a bug")))
    assert keep.filter(logging.LogRecord("x", logging.INFO, "", 0, "Withdrawing", None, None))


def test_core_retry_warnings_shrink_to_one_short_line_per_interval() -> None:
    def core_warning(at: float) -> logging.LogRecord:
        message = "gRPC call poll_workflow_task_queue retried 6 times {'error': 'Status {...}'}"
        record = logging.LogRecord("temporalio.core", logging.WARNING, "", 0, message, None, None)
        record.created = at
        return record

    keep = _OneRetryLinePer(seconds=10)
    first, soon, later = core_warning(100.0), core_warning(105.0), core_warning(111.0)

    assert [keep.filter(first), keep.filter(soon), keep.filter(later)] == [True, False, True]
    assert first.getMessage() == (
        "Temporal does not answer (gRPC call poll_workflow_task_queue retried 6 times); "
        "still trying."
    )
