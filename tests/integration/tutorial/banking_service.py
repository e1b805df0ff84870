"""The tutorial's mock bank: it checks the account and returns a transaction id."""

import uuid


class InvalidAccountError(Exception):
    pass


class BankingService:
    def __init__(self) -> None:
        self.accounts = {"85-150": 2000, "43-812": 0}

    def withdraw(self, account_number: str, amount: int, reference_id: str) -> str:
        self._find(account_number)
        return f"W-{uuid.uuid4()}"

    def deposit(self, account_number: str, amount: int, reference_id: str) -> str:
        self._find(account_number)
        return f"D-{uuid.uuid4()}"

    def _find(self, account_number: str) -> int:
        if account_number not in self.accounts:
            raise InvalidAccountError(f"The account number {account_number} is invalid.")
        return self.accounts[account_number]
