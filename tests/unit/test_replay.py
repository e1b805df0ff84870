"""The replay gate: saved histories of real runs against the workflows' code as it is.

tests/histories/ holds one history per path a transfer can take (completed,
refunded, settled after a lost answer, its worker killed mid-withdraw, an
input it refused) and module 1's workflow resumed after a kill, each saved
from a real run (`python -m crashlab.replay --save ... tests/histories`). If a
change to the workflow code would break workflows that are running when a
worker restarts with it, the first test fails.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow

from crashlab import replay
from worker.shared import MONEY_TRANSFER_WORKFLOW, PaymentDetails

HISTORIES = Path(__file__).resolve().parents[1] / "histories"


def test_there_is_a_saved_history_for_every_path() -> None:
    names = {path.stem for path in HISTORIES.glob("*.json")}
    assert names >= {
        "money-transfer-completed",
        "money-transfer-refunded",
        "money-transfer-settled-after-a-lost-answer",
        "money-transfer-worker-killed-during-withdraw",
        "money-transfer-invalid-input",
        "print-numbers-process-killed-after-3",
    }


async def test_every_saved_history_replays_against_the_workflows_as_they_are() -> None:
    verdicts = await replay.replay(replay.load_folder(HISTORIES))

    assert [v.lines() for v in verdicts if v.failure is not None] == []
    assert len(verdicts) == len(list(HISTORIES.glob("*.json")))


# Unsandboxed: the sandbox would re-import this test module, paths and all.
@workflow.defn(name=MONEY_TRANSFER_WORKFLOW, sandboxed=False)
class DepositFirst:
    """MoneyTransfer with its two steps swapped: the change the gate must catch."""

    @workflow.run
    async def run(self, details: PaymentDetails) -> str:
        for step in ("deposit", "withdraw"):
            await workflow.execute_activity(
                step, details, start_to_close_timeout=timedelta(seconds=15)
            )
        return "Transfer complete."


async def test_swapping_the_steps_is_named_a_non_determinism_error_at_its_event() -> None:
    [history] = [
        h for h in replay.load_folder(HISTORIES) if h.workflow_id == "money-transfer-completed"
    ]

    [verdict] = await replay.replay([history], workflows=[DepositFirst])

    assert verdict.nondeterministic
    assert verdict.mismatch == "event 5 ActivityTaskScheduled (withdraw)"
    lines = verdict.lines()
    assert lines[0].startswith("FAIL  money-transfer-completed (MoneyTransfer): non-determinism")
    assert "'withdraw' does not match activity type of activity command 'deposit'" in lines[2]


async def test_the_command_exits_0_on_the_saved_histories_and_2_on_a_missing_folder(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert await replay.run([str(HISTORIES)]) == replay.EXIT_OK
    assert "Every history replays" in capsys.readouterr().out

    assert await replay.run([str(tmp_path / "nowhere")]) == replay.EXIT_BAD_INPUT
    assert "is not a folder of saved histories" in capsys.readouterr().err
