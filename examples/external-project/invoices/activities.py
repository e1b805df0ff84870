"""The bank's teller API, by its contract: one Idempotency-Key per step, so a retry
after a lost answer gets the first answer back and moves no money twice."""

import os
from dataclasses import dataclass

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

# Errors a retry cannot fix (the bank's README lists every code).
PERMANENT = {"unknown_account", "insufficient_funds", "invalid_amount", "key_voided"}


@dataclass
class Movement:
    key: str
    account: str
    amount: int


async def _move(operation: str, movement: Movement) -> None:
    async with httpx.AsyncClient(base_url=os.environ["BANK_URL"], timeout=3) as bank:
        answer = await bank.post(
            f"/accounts/{movement.account}/{operation}",
            json={"amount": movement.amount},
            headers={"Idempotency-Key": movement.key},
        )
    if answer.is_success:
        return
    is_json = "json" in answer.headers.get("content-type", "")
    error = answer.json().get("error", {}) if is_json else {}
    reason = error.get("message", answer.text)
    message = f"{operation} {movement.key}: {answer.status_code} {reason}"
    # Anything else (an injected fault, a bank that is down) is worth retrying.
    raise ApplicationError(message, non_retryable=error.get("code") in PERMANENT)


@activity.defn
async def withdraw(movement: Movement) -> None:
    await _move("withdraw", movement)


@activity.defn
async def deposit(movement: Movement) -> None:
    await _move("deposit", movement)
