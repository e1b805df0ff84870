"""The ledger on a real SQLite file: money moves once per key, and never goes missing."""

import random
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from bank.errors import ErrorCode
from bank.ledger import MAX_PAGE, SEED_ACCOUNTS, Ledger, LedgerError
from bank.models import MAX_AMOUNT, Account, Movement, Operation

W = Operation.WITHDRAW
D = Operation.DEPOSIT
SEED_TOTAL = 2000 + 0 + 8 * 1000


def balances(ledger: Ledger) -> dict[str, int]:
    return {a.id: a.balance for a in ledger.accounts()}


def refused(code: ErrorCode, call: Any, *args: Any) -> LedgerError:
    with pytest.raises(LedgerError) as caught:
        call(*args)
    assert caught.value.code is code
    return caught.value


def test_a_new_ledger_is_seeded(bank_ledger: Ledger) -> None:
    expected = {
        "85-150": 2000,
        "43-812": 0,
        **{f"10-00{n}": 1000 for n in range(1, 9)},
    }
    assert balances(bank_ledger) == expected
    assert dict(SEED_ACCOUNTS) == expected
    assert bank_ledger.total() == SEED_TOTAL == 10_000
    assert bank_ledger.movements() == []


def test_the_file_is_in_wal_mode_and_balances_cannot_go_negative(tmp_path: Path) -> None:
    Ledger(tmp_path / "bank.db").close()
    db = sqlite3.connect(tmp_path / "bank.db")
    try:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        with pytest.raises(sqlite3.IntegrityError):
            db.execute("UPDATE accounts SET balance = -1 WHERE id = '43-812'")
    finally:
        db.close()


def test_a_missing_folder_is_created(tmp_path: Path) -> None:
    with Ledger(tmp_path / "fresh" / "volume" / "bank.db") as ledger:
        assert ledger.total() == SEED_TOTAL


def test_withdraw_moves_exactly_the_amount_and_writes_one_row(bank_ledger: Ledger) -> None:
    movement = bank_ledger.apply(W, "85-150", 250, "t1-withdraw")

    assert movement.seq == 1
    assert movement.operation is W
    assert (movement.account_id, movement.amount, movement.balance_after) == ("85-150", 250, 1750)
    assert movement.idempotency_key == "t1-withdraw"
    assert movement.replayed is False
    assert movement.created_at.endswith("Z")
    assert bank_ledger.account("85-150") == Account("85-150", 1750)
    assert bank_ledger.movements() == [movement]
    assert bank_ledger.total() == SEED_TOTAL - 250


def test_deposit_moves_exactly_the_amount_and_writes_one_row(bank_ledger: Ledger) -> None:
    movement = bank_ledger.apply(D, "43-812", 250, "t1-deposit")

    assert (movement.seq, movement.operation, movement.balance_after) == (1, D, 250)
    assert bank_ledger.account("43-812") == Account("43-812", 250)
    assert bank_ledger.movements() == [movement]
    assert bank_ledger.total() == SEED_TOTAL + 250


def test_the_same_key_again_replays_and_moves_nothing(bank_ledger: Ledger) -> None:
    first = bank_ledger.apply(W, "85-150", 250, "t1-withdraw")
    second = bank_ledger.apply(W, "85-150", 250, "t1-withdraw")

    assert second.replayed is True
    assert second == Movement(**{**first.__dict__, "replayed": True})
    assert bank_ledger.account("85-150").balance == 1750
    assert len(bank_ledger.movements()) == 1


@pytest.mark.parametrize(
    ("operation", "account_id", "amount", "words"),
    [
        (W, "85-150", 300, "withdraw $300 from 85-150"),
        (W, "10-001", 250, "withdraw $250 from 10-001"),
        (D, "85-150", 250, "deposit $250 to 85-150"),
    ],
)
def test_the_same_key_for_another_request_is_a_conflict(
    bank_ledger: Ledger, operation: Operation, account_id: str, amount: int, words: str
) -> None:
    bank_ledger.apply(W, "85-150", 250, "t1-withdraw")
    before = balances(bank_ledger)

    error = refused(
        ErrorCode.IDEMPOTENCY_KEY_CONFLICT,
        bank_ledger.apply,
        operation,
        account_id,
        amount,
        "t1-withdraw",
    )

    assert "withdraw $250 from 85-150 (ledger seq 1)" in error.message
    assert words in error.message
    assert balances(bank_ledger) == before
    assert len(bank_ledger.movements()) == 1


def test_an_unknown_account_is_refused_with_the_known_ones(bank_ledger: Ledger) -> None:
    error = refused(ErrorCode.UNKNOWN_ACCOUNT, bank_ledger.apply, D, "99-999", 5, "k")
    assert "'99-999'" in error.message
    assert "43-812" in error.message and "85-150" in error.message and "10-008" in error.message
    refused(ErrorCode.UNKNOWN_ACCOUNT, bank_ledger.account, "99-999")
    assert bank_ledger.movements() == []


def test_withdrawing_more_than_the_balance_is_refused(bank_ledger: Ledger) -> None:
    error = refused(ErrorCode.INSUFFICIENT_FUNDS, bank_ledger.apply, W, "85-150", 2001, "k")
    assert "$2000" in error.message and "$2001" in error.message
    assert bank_ledger.account("85-150").balance == 2000
    assert bank_ledger.movements() == []
    # The refused key was not used up: a valid request may still take it.
    assert bank_ledger.apply(W, "85-150", 2000, "k").balance_after == 0


@pytest.mark.parametrize("amount", [0, -5, True, 250.5, 250.0, "250", None, MAX_AMOUNT + 1])
def test_invalid_amounts_are_refused(bank_ledger: Ledger, amount: Any) -> None:
    error = refused(ErrorCode.INVALID_AMOUNT, bank_ledger.apply, D, "43-812", amount, "k")
    assert f"got {amount!r}" in error.message
    assert bank_ledger.account("43-812").balance == 0
    assert bank_ledger.movements() == []


@pytest.mark.parametrize("key", ["", "   "])
def test_a_blank_key_is_refused(bank_ledger: Ledger, key: str) -> None:
    error = refused(ErrorCode.MISSING_IDEMPOTENCY_KEY, bank_ledger.apply, D, "43-812", 5, key)
    assert "Idempotency-Key" in error.message
    assert bank_ledger.movements() == []


def test_data_survives_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bank.db"
    with Ledger(path) as ledger:
        withdrawn = ledger.apply(W, "85-150", 250, "t1-withdraw")
        deposited = ledger.apply(D, "43-812", 250, "t1-deposit")

    with Ledger(path) as reopened:
        # Not reseeded: the balances are the moved ones.
        assert reopened.account("85-150").balance == 1750
        assert reopened.account("43-812").balance == 250
        assert reopened.movements() == [withdrawn, deposited]
        # And the keys are remembered: a retry after a restart replays.
        assert reopened.apply(W, "85-150", 250, "t1-withdraw").replayed is True
        assert reopened.total() == SEED_TOTAL


def test_transfers_conserve_the_total(bank_ledger: Ledger) -> None:
    rng = random.Random(7)
    ids = [account_id for account_id, _ in SEED_ACCOUNTS]
    done = 0
    for n in range(200):
        source, target = rng.sample(ids, 2)
        amount = rng.randint(1, 700)
        try:
            bank_ledger.apply(W, source, amount, f"t{n}-withdraw")
        except LedgerError as error:
            assert error.code is ErrorCode.INSUFFICIENT_FUNDS
            continue
        bank_ledger.apply(D, target, amount, f"t{n}-deposit")
        done += 1
        assert bank_ledger.total() == SEED_TOTAL

    assert done > 100
    assert len(bank_ledger.movements(limit=MAX_PAGE)) == 2 * done
    assert sum(balances(bank_ledger).values()) == SEED_TOTAL


def test_concurrent_retries_of_one_key_move_the_money_once(bank_ledger: Ledger) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: bank_ledger.apply(W, "85-150", 100, "k"), range(32)))

    assert sum(not m.replayed for m in results) == 1
    assert {m.seq for m in results} == {1}
    assert bank_ledger.account("85-150").balance == 1900


def test_movements_pages_by_seq(bank_ledger: Ledger) -> None:
    for n in range(5):
        bank_ledger.apply(D, "43-812", n + 1, f"k{n}")

    assert [m.seq for m in bank_ledger.movements()] == [1, 2, 3, 4, 5]
    assert [m.seq for m in bank_ledger.movements(after_seq=2)] == [3, 4, 5]
    assert [m.seq for m in bank_ledger.movements(after_seq=1, limit=2)] == [2, 3]
    assert bank_ledger.movements(after_seq=5) == []
    assert [m.amount for m in bank_ledger.movements()] == [1, 2, 3, 4, 5]
    assert [m.balance_after for m in bank_ledger.movements()] == [1, 3, 6, 10, 15]


@pytest.mark.parametrize(
    ("after", "limit"), [(-1, 10), (0, 0), (0, MAX_PAGE + 1), (True, 10), (0, 2.5)]
)
def test_movements_refuses_bad_pages(bank_ledger: Ledger, after: Any, limit: Any) -> None:
    refused(ErrorCode.INVALID_REQUEST, bank_ledger.movements, after, limit)
