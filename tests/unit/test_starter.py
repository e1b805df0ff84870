"""The starter's command line: input checks, output, exit codes, re-attaching.

It runs in-process against the session's local Temporal dev server, the
worker's real Workers and the in-process FakeBank.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import RawValue
from temporalio.service import RPCError, RPCStatusCode

import starter.__main__ as starter
from tests.unit.temporal_env import FakeBank, running_workers, shared_temporal
from worker.shared import MONEY_TRANSFER_WORKFLOW, PaymentDetails


@pytest.fixture(scope="session")
async def client() -> AsyncIterator[Client]:
    async with shared_temporal() as env:
        yield env.client


async def run_starter(
    argv: list[str],
    *,
    client: Client | None = None,
    bank: FakeBank | None = None,
    env: dict[str, str] | None = None,
) -> int:
    """The starter's whole run, bounded: a test that would wait forever fails instead."""
    async with asyncio.timeout(30):
        return await starter.run(argv, client=client, bank=bank, env=env)


async def assert_not_started(client: Client, workflow_id: str) -> None:
    with pytest.raises(RPCError) as missing:
        await client.get_workflow_handle(workflow_id).describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--amount", "250.5"], "'250.5' is not an amount: give a whole number of dollars"),
        (["--amount", "-5"], "'-5' is not an amount"),
        (["--amount", "0"], "'0' is not an amount"),
        (["--amount", "abc"], "'abc' is not an amount"),
        (["--attempts", "-1"], "'-1' is not a number of attempts"),
        (
            ["--to", "85-150"],
            "Nothing started: source_account and target_account are the same account (85-150)",
        ),
        (["--attempts", "5000"], "max_attempts must be a whole number from 0"),
        (
            ["--to", "99-999"],
            "Account 99-999 does not exist at the bank. Known accounts: 85-150, 43-812.",
        ),
        (
            ["--from", "12-345"],
            "Account 12-345 does not exist at the bank. Known accounts: 85-150, 43-812.",
        ),
    ],
    ids=[
        "fraction",
        "negative",
        "zero",
        "words",
        "attempts",
        "same-account",
        "too-many-attempts",
        "to",
        "from",
    ],
)
async def test_bad_input_exits_2_with_a_clear_message_and_starts_nothing(
    client: Client, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    bank = FakeBank()
    workflow_id = f"transfer-{uuid.uuid4()}"

    code = await run_starter(
        ["transfer", "--workflow-id", workflow_id, *args], client=client, bank=bank
    )

    assert code == 2
    output = capsys.readouterr()
    assert message in output.err
    assert output.out == ""
    assert bank.calls == []
    await assert_not_started(client, workflow_id)


async def test_an_unreachable_bank_names_bank_url_and_what_to_do(
    client: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    workflow_id = f"transfer-{uuid.uuid4()}"

    code = await run_starter(
        ["transfer", "--workflow-id", workflow_id],
        client=client,
        bank=FakeBank(unreachable=True),
        env={"BANK_URL": "http://bank.example:8000"},
    )

    assert code == 2
    error = capsys.readouterr().err
    assert "Cannot reach the bank at http://bank.example:8000" in error
    assert "make up" in error
    await assert_not_started(client, workflow_id)


async def test_unreachable_temporal_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(starter, "CONNECT_WAIT", 0.0)

    code = await run_starter(["transfer"], bank=FakeBank(), env={"TEMPORAL_ADDRESS": "127.0.0.1:1"})

    assert code == 2
    assert "Cannot connect to Temporal at 127.0.0.1:1" in capsys.readouterr().err


async def test_a_successful_transfer_prints_the_tutorials_three_lines(
    client: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    bank = FakeBank()
    reference_id = str(uuid.uuid4())

    async with running_workers(client, bank) as queues:
        code = await run_starter(
            ["transfer", "--reference-id", reference_id, "--task-queue", queues.transfer],
            client=client,
            bank=bank,
        )

    assert code == 0
    summary = (
        f"{{'amount': 250, 'receiver': '43-812', 'reference_id': '{reference_id}', "
        "'sender': '85-150'}"
    )
    output = capsys.readouterr()
    assert output.out == f"Transfer complete.\nWithdraw: {summary}\nDeposit: {summary}\n"
    assert f"Started transfer transfer-{reference_id}: $250 from 85-150 to 43-812." in output.err
    assert f"/namespaces/default/workflows/transfer-{reference_id}" in output.err
    assert bank.balances == {"85-150": 1750, "43-812": 250}


async def test_the_same_reference_id_again_shows_the_first_outcome_and_moves_nothing(
    client: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    bank = FakeBank()
    args = ["transfer", "--reference-id", str(uuid.uuid4())]
    async with running_workers(client, bank) as queues:
        assert (
            await run_starter([*args, "--task-queue", queues.transfer], client=client, bank=bank)
            == 0
        )
        first = capsys.readouterr()
        calls = list(bank.calls)

        again = await run_starter(
            [*args, "--task-queue", queues.transfer], client=client, bank=bank
        )

    assert again == 0
    output = capsys.readouterr()
    assert output.out == first.out
    assert "already ran (completed): here is its outcome. Nothing runs again" in output.err
    assert bank.calls == calls
    assert bank.balances == {"85-150": 1750, "43-812": 250}


async def test_a_failed_transfer_exits_1_and_says_what_happened(
    client: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    bank = FakeBank(failing_deposits={"43-812": math.inf}, failure_message="Bank is closed.")
    reference_id = str(uuid.uuid4())
    args = ["transfer", "--attempts", "1", "--amount", "100", "--reference-id", reference_id]

    async with running_workers(client, bank) as queues:
        code = await run_starter([*args, "--task-queue", queues.transfer], client=client, bank=bank)
        output = capsys.readouterr()
        # Running it again must not deposit what the refund already gave back.
        bank.failing_deposits.clear()
        again = await run_starter(
            [*args, "--task-queue", queues.transfer], client=client, bank=bank
        )

    assert code == 1
    assert output.out == ""
    assert (
        "Transfer failed: Deposit into 43-812 failed: Bank is closed. "
        "$100 was refunded to 85-150.\n"
    ) in output.err
    assert again == 1
    assert "already ran (failed)" in capsys.readouterr().err
    assert bank.balances == {"85-150": 2000, "43-812": 0}


async def test_the_starter_re_attaches_to_a_running_transfer_and_warns_without_worker(
    client: Client, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(starter, "NO_WORKER_CHECK_AFTER", 0.1)
    bank = FakeBank()
    queue = f"transfer-{uuid.uuid4()}"
    first = PaymentDetails("85-150", "43-812", 250, reference_id=str(uuid.uuid4()))
    workflow_id = f"transfer-{first.reference_id}"
    # Started earlier, on a task queue that no worker polls yet.
    await client.start_workflow(MONEY_TRANSFER_WORKFLOW, first, id=workflow_id, task_queue=queue)

    run = asyncio.create_task(
        run_starter(
            ["transfer", "--workflow-id", workflow_id, "--task-queue", queue, "--amount", "7"],
            client=client,
            bank=bank,
        )
    )
    errors = await _stderr_until(capsys, "No worker is polling task queue")
    assert f"Transfer {workflow_id} is already running: re-attached to it" in errors

    async with running_workers(client, bank, transfer_queue=queue):
        code = await asyncio.wait_for(run, timeout=20)

    assert code == 0
    assert f"'reference_id': '{first.reference_id}'" in capsys.readouterr().out
    assert bank.balances == {"85-150": 1750, "43-812": 250}  # the first request's $250, once


async def test_print_numbers_is_its_own_worker_and_prints_the_numbers(
    client: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    # No other worker polls this queue: the starter runs the workflow itself, as
    # module 1's run_workflow.py does.
    code = await run_starter(
        [
            "print-numbers",
            "--pause",
            "0.01",
            "--task-queue",
            f"print-{uuid.uuid4()}",
            "--workflow-id",
            f"print-numbers-{uuid.uuid4()}",
        ],
        client=client,
    )

    assert code == 0
    # The activity prints the numbers in this same process, then the starter the result.
    assert capsys.readouterr().out.splitlines() == [
        *(str(n) for n in range(1, 11)),
        "Workflow completed",
    ]


async def test_balances_lists_every_account(capsys: pytest.CaptureFixture[str]) -> None:
    code = await run_starter(["balances"], bank=FakeBank())

    assert code == 0
    assert capsys.readouterr().out == "85-150  $2000\n43-812  $0\n"


def test_help_describes_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        starter.build_parser().parse_args(["transfer", "--help"])

    assert exit_.value.code == 0
    assert "--amount" in capsys.readouterr().out


async def _stderr_until(capsys: pytest.CaptureFixture[str], text: str) -> str:
    seen = ""
    async with asyncio.timeout(10):
        while text not in seen:
            await asyncio.sleep(0.05)
            seen += capsys.readouterr().err
    return seen


async def test_no_wait_prints_the_workflow_id_and_leaves_it_running(
    client: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    queue = f"transfer-{uuid.uuid4()}"  # no worker: the transfer stays running
    reference_id = str(uuid.uuid4())

    code = await run_starter(
        ["transfer", "--reference-id", reference_id, "--task-queue", queue, "--no-wait"],
        client=client,
        bank=FakeBank(),
    )

    assert code == 0
    workflow_id = capsys.readouterr().out.strip()
    assert workflow_id == f"transfer-{reference_id}"
    handle = client.get_workflow_handle(workflow_id)
    description = await handle.describe()
    assert description.status == WorkflowExecutionStatus.RUNNING
    await handle.terminate("test done")


async def test_waiting_for_the_result_survives_a_temporal_restart(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class FlakyHandle:
        calls = 0

        async def result(self) -> str:
            self.calls += 1
            if self.calls <= 2:
                raise RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")
            return "done"

    handle = FlakyHandle()

    assert await starter.result_across_outages(handle) == "done"
    assert handle.calls == 3
    assert "Lost contact with Temporal (connection refused)" in capsys.readouterr().err


async def test_waiting_for_the_result_does_not_hide_other_temporal_errors() -> None:
    class RefusingHandle:
        async def result(self) -> str:
            raise RPCError("no such namespace", RPCStatusCode.NOT_FOUND, b"")

    with pytest.raises(RPCError, match="no such namespace"):
        await starter.result_across_outages(RefusingHandle())


def test_a_result_that_is_not_text_is_printed_as_it_came_with_a_word_on_why(
    client: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    # What an older lab worker returned (a dataclass): readable, but not the text.
    payload = client.data_converter.payload_converter.to_payload({"reference_id": "r"})
    starter.show_result(client, RawValue(payload), "The transfer")

    output = capsys.readouterr()
    assert output.out == '{\n  "reference_id": "r"\n}\n'
    assert "is not the text this lab's workflows return" in output.err


def test_a_result_in_an_unknown_encoding_is_explained_not_a_traceback(
    client: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    payload = Payload(metadata={"encoding": b"binary/encrypted"}, data=b"\x00\x01")
    starter.show_result(client, RawValue(payload), "The transfer")

    output = capsys.readouterr()
    assert output.out == ""
    assert "completed, but its result (binary/encrypted) cannot be read here" in output.err
