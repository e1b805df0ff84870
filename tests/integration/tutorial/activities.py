"""The tutorial's activities: each returns the bank's transaction id."""

from banking_service import BankingService
from shared import PaymentDetails
from temporalio import activity


class BankingActivities:
    def __init__(self) -> None:
        self.bank = BankingService()

    @activity.defn
    async def withdraw(self, data: PaymentDetails) -> str:
        key = f"{data.reference_id}-withdrawal"
        return self.bank.withdraw(data.source_account, data.amount, key)

    @activity.defn
    async def deposit(self, data: PaymentDetails) -> str:
        key = f"{data.reference_id}-deposit"
        return self.bank.deposit(data.target_account, data.amount, key)

    @activity.defn
    async def refund(self, data: PaymentDetails) -> str:
        key = f"{data.reference_id}-refund"
        return self.bank.deposit(data.source_account, data.amount, key)
