"""An in-process bank that does no I/O: the tutorial template's design.

Only the benchmark's baseline worker uses it (BANK_URL=memory:), so the cost of
a real bank over HTTP with a durable ledger is measured, not guessed. It keeps
balances and idempotency keys in a dict, which a crash forgets.
"""

import itertools
from datetime import UTC, datetime

from bank.client import BankError
from bank.errors import ErrorCode
from bank.ledger import SEED_ACCOUNTS
from bank.models import Movement, Operation

URL = "memory:"


class InMemoryBank:
    def __init__(self) -> None:
        self.balances = dict(SEED_ACCOUNTS)
        self.done: dict[str, Movement] = {}
        self.voided: set[str] = set()
        self.seq = itertools.count(1)

    async def withdraw(self, account_id: str, amount: int, idempotency_key: str) -> Movement:
        return self._move(Operation.WITHDRAW, account_id, amount, idempotency_key)

    async def deposit(self, account_id: str, amount: int, idempotency_key: str) -> Movement:
        return self._move(Operation.DEPOSIT, account_id, amount, idempotency_key)

    async def void(self, idempotency_key: str) -> Movement | None:
        if idempotency_key in self.done:
            return self._replay(idempotency_key)
        self.voided.add(idempotency_key)
        return None

    def _replay(self, key: str) -> Movement:
        return Movement(**{**self.done[key].__dict__, "replayed": True})

    def _move(self, op: Operation, account_id: str, amount: int, key: str) -> Movement:
        if key in self.done:
            return self._replay(key)
        if key in self.voided:
            raise BankError(ErrorCode.KEY_VOIDED, f"Key {key} was voided.", 409)
        if account_id not in self.balances:
            raise BankError(ErrorCode.UNKNOWN_ACCOUNT, f"Account {account_id} does not exist.", 404)
        change = -amount if op == Operation.WITHDRAW else amount
        if self.balances[account_id] + change < 0:
            raise BankError(
                ErrorCode.INSUFFICIENT_FUNDS, f"Account {account_id} lacks ${amount}.", 409
            )
        self.balances[account_id] += change
        movement = Movement(
            seq=next(self.seq),
            idempotency_key=key,
            operation=op,
            account_id=account_id,
            amount=amount,
            balance_after=self.balances[account_id],
            created_at=datetime.now(UTC).isoformat(),
        )
        self.done[key] = movement
        return movement
