"""The ledger checker: it must catch every kind of lost, doubled or stray money."""

from bank.ledger import SEED_ACCOUNTS
from bank.models import Account, Movement, Operation
from crashlab.invariants import check, split_key


class Book:
    """A ledger built by hand, with the balances it implies."""

    def __init__(self) -> None:
        self.balances = dict(SEED_ACCOUNTS)
        self.movements: list[Movement] = []

    def move(self, op: Operation, account: str, amount: int, key: str) -> None:
        self.balances[account] += amount if op == Operation.DEPOSIT else -amount
        self.movements.append(
            Movement(
                seq=len(self.movements) + 1,
                idempotency_key=key,
                operation=op,
                account_id=account,
                amount=amount,
                balance_after=self.balances[account],
                created_at="2026-01-01T00:00:00Z",
            )
        )

    def transfer(self, ref: str, *steps: str, amount: int = 250) -> None:
        for step in steps:
            if step == "withdraw":
                self.move(Operation.WITHDRAW, "85-150", amount, f"{ref}-withdraw")
            elif step == "deposit":
                self.move(Operation.DEPOSIT, "43-812", amount, f"{ref}-deposit")
            else:
                self.move(Operation.DEPOSIT, "85-150", amount, f"{ref}-refund")

    def accounts(self) -> list[Account]:
        return [Account(id=a, balance=b) for a, b in self.balances.items()]

    def failed(self, settled: bool = True) -> dict[str, list[str]]:
        report = check(self.accounts(), self.movements, settled=settled)
        return {c.name: c.violations for c in report.checks if not c.ok}


def test_split_key_knows_transfer_steps_only() -> None:
    assert split_key("1f35-a2-withdraw") == ("1f35-a2", "withdraw")
    assert split_key("abc-refund") == ("abc", "refund")
    assert split_key("abc-by-hand") is None
    assert split_key("withdraw") is None


def test_whole_transfers_pass_and_are_counted() -> None:
    book = Book()
    book.transfer("t1", "withdraw", "deposit")
    book.transfer("t2", "withdraw", "refund")
    report = check(book.accounts(), book.movements, settled=True)
    assert report.ok, report.lines()
    assert report.outcome("t1") == "completed"
    assert report.outcome("t2") == "compensated"
    assert report.outcome("never-ran") == "rejected"
    assert report.total == report.expected_total == sum(b for _, b in SEED_ACCOUNTS)


def test_a_withdraw_alone_is_in_flight_until_everything_settles() -> None:
    book = Book()
    book.transfer("t1", "withdraw")
    running = check(book.accounts(), book.movements, settled=False)
    assert running.ok, running.lines()
    assert running.in_flight == 250
    # Once nothing runs, a lone withdraw is money lost.
    assert set(book.failed(settled=True)) == {
        "money is conserved",
        "every transfer is completed, compensated or in flight",
    }


def test_deposit_and_refund_both_is_money_created() -> None:
    book = Book()
    book.transfer("t1", "withdraw", "deposit", "refund")
    failed = book.failed()
    assert "money is conserved" in failed
    assert (
        "deposit and refund" in failed["every transfer is completed, compensated or in flight"][0]
    )


def test_a_deposit_without_withdraw_is_caught() -> None:
    book = Book()
    book.transfer("t1", "deposit")
    assert set(book.failed()) == {
        "money is conserved",
        "every transfer is completed, compensated or in flight",
    }


def test_a_balance_changed_outside_the_ledger_is_caught() -> None:
    book = Book()
    book.transfer("t1", "withdraw", "deposit")
    book.balances["43-812"] += 100  # money from nowhere, no ledger row
    failed = book.failed()
    assert "the ledger explains every balance" in failed
    assert "money is conserved" in failed


def test_a_step_applied_twice_is_caught() -> None:
    book = Book()
    book.transfer("t1", "withdraw", "withdraw", "deposit")
    failed = book.failed()
    assert failed["no step was applied twice"] == ["key t1-withdraw was applied 2 times"]


def test_steps_with_different_amounts_are_caught() -> None:
    book = Book()
    book.transfer("t1", "withdraw", amount=250)
    book.transfer("t1", "deposit", amount=200)
    assert "every transfer is completed, compensated or in flight" in book.failed()


def test_negative_balance_is_caught() -> None:
    book = Book()
    book.move(Operation.WITHDRAW, "43-812", 5, "x-by-hand")
    assert "no balance is negative" in book.failed()


def test_movements_by_hand_count_but_break_nothing() -> None:
    book = Book()
    book.move(Operation.WITHDRAW, "10-001", 30, "x-by-hand")
    report = check(book.accounts(), book.movements, settled=True)
    assert report.ok, report.lines()
    assert report.expected_total == sum(b for _, b in SEED_ACCOUNTS) - 30
