"""The bank's invariants, proven from its ledger rather than taken on faith.

Jepsen's bank workload, applied to the lab: money is neither created nor lost,
no balance goes negative. On top of that, what durable execution promises:
no step of a transfer is applied twice, and every transfer ends whole.

A transfer's movements carry the keys ``<reference id>-withdraw``,
``-deposit`` and ``-refund`` (worker.shared.idempotency_key), so the ledger
alone says what happened to each transfer:

- completed: withdraw and deposit, once each, same amount;
- compensated: withdraw and refund, once each, same amount;
- in flight: a withdraw alone, while its workflow still runs;
- rejected: nothing at all (the bank refused the withdraw).

Anything else (a deposit without a withdraw, a deposit *and* a refund, a
withdraw left alone once everything has settled) is a violation.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from bank.client import BankClient
from bank.ledger import SEED_ACCOUNTS
from bank.models import Account, Movement, Operation

STEPS = ("withdraw", "deposit", "refund")
COMPLETED, COMPENSATED, IN_FLIGHT, REJECTED, BROKEN = (
    "completed",
    "compensated",
    "in flight",
    "rejected",
    "broken",
)


@dataclass
class Check:
    name: str
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


@dataclass
class LedgerReport:
    checks: list[Check]
    outcomes: dict[str, str]  # reference id -> completed, compensated, in flight, broken
    total: int
    expected_total: int
    in_flight: int  # dollars withdrawn and not yet deposited or refunded

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def outcome(self, reference_id: str) -> str:
        """What happened to one transfer; no movement at all means rejected."""
        return self.outcomes.get(reference_id, REJECTED)

    def counts(self) -> Counter[str]:
        return Counter(self.outcomes.values())

    def lines(self) -> list[str]:
        """The verdicts, for people."""
        out = []
        for check in self.checks:
            mark = "ok  " if check.ok else "FAIL"
            first = f": {check.violations[0]}" if check.violations else ""
            more = f" (+{len(check.violations) - 1} more)" if len(check.violations) > 1 else ""
            out.append(f"{mark} {check.name}{first}{more}")
        return out


def split_key(key: str) -> tuple[str, str] | None:
    """(reference id, step) for a transfer's key, None for any other movement."""
    reference_id, _, step = key.rpartition("-")
    return (reference_id, step) if reference_id and step in STEPS else None


def check(
    accounts: Iterable[Account], movements: Iterable[Movement], *, settled: bool
) -> LedgerReport:
    """Checks every invariant. `settled`: no workflow runs any more, so nothing may be
    in flight."""
    balances = {a.id: a.balance for a in accounts}
    ledger = sorted(movements, key=lambda m: m.seq)
    seed = dict(SEED_ACCOUNTS)

    replay = Check("the ledger explains every balance")
    no_negative = Check("no balance is negative")
    once = Check("no step was applied twice")
    whole = Check("every transfer is completed, compensated or in flight")
    conserved = Check("money is conserved")

    # Replay the ledger from the seed balances.
    replayed = dict(seed)
    external = 0  # money moved by calls outside any transfer (a learner's curl)
    for m in ledger:
        sign = -1 if m.operation == Operation.WITHDRAW else 1
        replayed[m.account_id] = replayed.get(m.account_id, 0) + sign * m.amount
        if replayed[m.account_id] != m.balance_after:
            replay.violations.append(
                f"movement {m.seq} ({m.idempotency_key}) left {m.account_id} at "
                f"${m.balance_after}, but the ledger before it adds up to "
                f"${replayed[m.account_id]}"
            )
            replayed[m.account_id] = m.balance_after
        if m.balance_after < 0:
            no_negative.violations.append(
                f"movement {m.seq} took {m.account_id} to ${m.balance_after}"
            )
        if split_key(m.idempotency_key) is None:
            external += sign * m.amount
    for account_id, balance in sorted(balances.items()):
        from_ledger = replayed.get(account_id, 0)
        if from_ledger != balance:
            replay.violations.append(
                f"{account_id} holds ${balance} but its ledger adds up to ${from_ledger}"
            )
        if balance < 0:
            no_negative.violations.append(f"{account_id} holds ${balance}")

    key_counts = Counter(m.idempotency_key for m in ledger)
    once.violations.extend(
        f"key {key} was applied {n} times" for key, n in key_counts.items() if n > 1
    )

    # Group the transfers' movements by reference id.
    steps: dict[str, dict[str, list[Movement]]] = defaultdict(lambda: defaultdict(list))
    for m in ledger:
        parsed = split_key(m.idempotency_key)
        if parsed:
            steps[parsed[0]][parsed[1]].append(m)
    outcomes: dict[str, str] = {}
    in_flight = 0
    for ref, by_step in steps.items():
        outcome, problem = _outcome(by_step, settled=settled)
        outcomes[ref] = outcome
        if problem:
            whole.violations.append(f"transfer {ref}: {problem}")
        if outcome == IN_FLIGHT:
            in_flight += by_step["withdraw"][0].amount

    total = sum(balances.values())
    expected = sum(seed.values()) + external - in_flight
    if total != expected:
        conserved.violations.append(
            f"the bank holds ${total}; it should hold ${expected} "
            f"(seeded ${sum(seed.values())}, ${in_flight} in flight, ${external} moved "
            "outside transfers)"
        )
    return LedgerReport(
        checks=[conserved, no_negative, once, whole, replay],
        outcomes=outcomes,
        total=total,
        expected_total=expected,
        in_flight=in_flight,
    )


def _outcome(by_step: dict[str, list[Movement]], *, settled: bool) -> tuple[str, str | None]:
    """(outcome, violation or None) for one transfer's movements."""
    present = {step for step in STEPS if by_step.get(step)}
    amounts = {m.amount for moves in by_step.values() for m in moves}
    if len(amounts) > 1:
        return BROKEN, f"its steps moved different amounts: {sorted(amounts)}"
    if present == {"withdraw", "deposit"}:
        return COMPLETED, None
    if present == {"withdraw", "refund"}:
        return COMPENSATED, None
    if present == {"withdraw"}:
        if settled:
            return BROKEN, "withdrawn, then neither deposited nor refunded"
        return IN_FLIGHT, None
    return BROKEN, f"has {' and '.join(sorted(present))} without a matching step"


async def check_bank(bank: BankClient, *, settled: bool) -> LedgerReport:
    """Reads a consistent snapshot of balances and ledger, then checks it.

    Transfers may be moving money while we read: the balances are read between
    two reads of the ledger, and the snapshot counts only if no movement landed
    in between.
    """
    movements: list[Movement] = []
    for _ in range(50):
        movements.extend(await _ledger_after(bank, movements))
        accounts = await bank.accounts()
        landed = await _ledger_after(bank, movements)
        if not landed:
            return check(accounts, movements, settled=settled)
        movements.extend(landed)
    raise RuntimeError("The bank never stood still long enough to read a consistent snapshot.")


async def _ledger_after(bank: BankClient, known: list[Movement]) -> list[Movement]:
    found: list[Movement] = []
    while True:
        after = (found or known)[-1].seq if (found or known) else 0
        page = await bank.ledger(after=after, limit=1000)
        found.extend(page)
        if len(page) < 1000:
            return found
