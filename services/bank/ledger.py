"""The bank's ledger: balances and movements in one SQLite file, no HTTP.

Every movement is applied in one transaction together with its idempotency key,
so "the money moved" and "this key was used" can never disagree, even after a
``docker kill`` in the middle of a request: WAL mode with ``synchronous=FULL``
means that once ``apply`` returns, the movement is on disk.

A repeated key with the same request is answered from the ledger (a replay:
nothing moves again); a repeated key with a different request is refused.

A key can also be voided (``void``): if it has not moved money by then, it never
will. That is how a caller who lost the bank's answer learns the truth for good:
"did it happen?" is not enough, because a request still on its way (delayed by
the fault switch, or queued behind a paused container) could land after the
question was answered.
"""

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from bank.errors import ErrorCode
from bank.models import Account, Movement, Operation, amount_problem

# The accounts a fresh ledger starts with: the tutorial's two accounts, and
# eight spares for load tests. Only used when the accounts table is empty.
SEED_ACCOUNTS: tuple[tuple[str, int], ...] = (
    ("85-150", 2000),
    ("43-812", 0),
    *((f"10-{n:03d}", 1000) for n in range(1, 9)),
)

MAX_BALANCE = 2**62

# The largest seq SQLite can store (its INTEGER is 64-bit signed).
MAX_SEQ = 2**63 - 1

DEFAULT_PAGE = 1000
MAX_PAGE = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY,
    balance INTEGER NOT NULL CHECK (balance >= 0)
);
CREATE TABLE IF NOT EXISTS movements (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE,
    operation TEXT,
    account_id TEXT,
    amount INTEGER,
    balance_after INTEGER,
    created_at TEXT
);
CREATE TABLE IF NOT EXISTS voided_keys (
    idempotency_key TEXT PRIMARY KEY,
    voided_at TEXT
);
"""

_MOVEMENT_COLUMNS = "seq, idempotency_key, operation, account_id, amount, balance_after, created_at"


class LedgerError(Exception):
    """The ledger refuses a request; ``code`` is for programs, ``message`` for people."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def describe(operation: Operation, account_id: str, amount: int) -> str:
    """A movement in words, e.g. 'withdraw $250 from 85-150'."""
    preposition = "from" if operation is Operation.WITHDRAW else "to"
    return f"{operation.value} ${amount} {preposition} {account_id}"


def check_amount(amount: object) -> int:
    """Return ``amount`` if it is a valid number of dollars, else raise INVALID_AMOUNT."""
    problem = amount_problem(amount)
    if problem is not None:
        raise LedgerError(ErrorCode.INVALID_AMOUNT, problem)
    assert isinstance(amount, int)
    return amount


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _movement(row: Any, *, replayed: bool = False) -> Movement:
    seq, key, operation, account_id, amount, balance_after, created_at = row
    return Movement(
        seq=int(seq),
        idempotency_key=str(key),
        operation=Operation(operation),
        account_id=str(account_id),
        amount=int(amount),
        balance_after=int(balance_after),
        created_at=str(created_at),
        replayed=replayed,
    )


class Ledger:
    """One SQLite ledger file. Safe to share between threads: one lock serialises all access."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            # /data may be a fresh volume: create the folder rather than fail to open.
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so each transaction
        # is exactly the statements we mean, not what the sqlite3 module guesses.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: fsync on every commit, so an acknowledged movement survives a kill.
            self._db.execute("PRAGMA synchronous=FULL")
            # A learner poking at the file with the sqlite3 CLI should delay us, not break us.
            self._db.execute("PRAGMA busy_timeout=5000")
        with self._write():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            (count,) = self._db.execute("SELECT COUNT(*) FROM accounts").fetchone()
            if count == 0:
                self._db.executemany(
                    "INSERT INTO accounts (id, balance) VALUES (?, ?)", SEED_ACCOUNTS
                )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def apply(
        self, operation: Operation, account_id: str, amount: int, idempotency_key: str
    ) -> Movement:
        """Withdraw or deposit ``amount``, once per ``idempotency_key``.

        Returns the new movement, or the stored one with ``replayed=True`` when the
        key was already used for this exact request. Raises LedgerError otherwise.
        """
        operation = Operation(operation)
        if not idempotency_key or not idempotency_key.strip():
            raise LedgerError(
                ErrorCode.MISSING_IDEMPOTENCY_KEY,
                "An Idempotency-Key is required, so that a retry cannot move the money twice. "
                "Send a key that is unique to this movement, e.g. '<transfer id>-withdraw'.",
            )
        check_amount(amount)
        with self._write():
            return self._apply(operation, account_id, amount, idempotency_key)

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction, committed if the block ends normally, else rolled back.

        IMMEDIATE takes SQLite's write lock at once, so a key check and the update that
        follows cannot interleave with another writer (e.g. the sqlite3 CLI).
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _movement_of(self, key: str) -> Movement | None:
        """The movement ``key`` made, if any, as a replay."""
        row = self._db.execute(
            f"SELECT {_MOVEMENT_COLUMNS} FROM movements WHERE idempotency_key = ?", (key,)
        ).fetchone()
        return None if row is None else _movement(row, replayed=True)

    def _apply(self, operation: Operation, account_id: str, amount: int, key: str) -> Movement:
        original = self._movement_of(key)
        if original is not None:
            if (original.operation, original.account_id, original.amount) == (
                operation,
                account_id,
                amount,
            ):
                return original
            raise LedgerError(
                ErrorCode.IDEMPOTENCY_KEY_CONFLICT,
                f"Idempotency key {key!r} was already used for "
                f"{describe(original.operation, original.account_id, original.amount)} "
                f"(ledger seq {original.seq}); this request is "
                f"{describe(operation, account_id, amount)}. Nothing was moved. "
                "Repeat the original request exactly, or use a new key for a new movement.",
            )

        voided = self._db.execute(
            "SELECT voided_at FROM voided_keys WHERE idempotency_key = ?", (key,)
        ).fetchone()
        if voided is not None:
            raise LedgerError(
                ErrorCode.KEY_VOIDED,
                f"Idempotency key {key!r} was voided at {voided[0]}, so it can never move "
                f"money: {describe(operation, account_id, amount)} was not done. "
                "Use a new key for a new movement.",
            )

        balance = self._balance(account_id)
        if operation is Operation.WITHDRAW:
            if amount > balance:
                raise LedgerError(
                    ErrorCode.INSUFFICIENT_FUNDS,
                    f"Account {account_id} has ${balance}, so it cannot withdraw ${amount}. "
                    "Nothing was moved. Withdraw at most the balance, or deposit first.",
                )
            balance_after = balance - amount
        else:
            balance_after = balance + amount
            if balance_after > MAX_BALANCE:
                raise LedgerError(
                    ErrorCode.INVALID_AMOUNT,
                    f"Depositing ${amount} would take account {account_id} past the "
                    f"ledger's limit of ${MAX_BALANCE}. Nothing was moved.",
                )

        self._db.execute(
            "UPDATE accounts SET balance = ? WHERE id = ?", (balance_after, account_id)
        )
        cursor = self._db.execute(
            "INSERT INTO movements (idempotency_key, operation, account_id, amount,"
            " balance_after, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (key, operation.value, account_id, amount, balance_after, _now()),
        )
        row = self._db.execute(
            f"SELECT {_MOVEMENT_COLUMNS} FROM movements WHERE seq = ?", (cursor.lastrowid,)
        ).fetchone()
        return _movement(row)

    def void(self, idempotency_key: str) -> Movement | None:
        """Settle ``idempotency_key`` for good: its movement, or None if it has none.

        None means the key is now void: every later withdraw or deposit with it is
        refused with key_voided, so the answer "nothing moved" stays true forever.
        Voiding twice is harmless; a key that moved money is left as it is.
        """
        if not idempotency_key or not idempotency_key.strip():
            raise LedgerError(
                ErrorCode.MISSING_IDEMPOTENCY_KEY,
                "Say which movement to void: send its Idempotency-Key.",
            )
        with self._write():
            movement = self._movement_of(idempotency_key)
            if movement is None:
                self._db.execute(
                    "INSERT OR IGNORE INTO voided_keys (idempotency_key, voided_at) VALUES (?, ?)",
                    (idempotency_key, _now()),
                )
        return movement

    def _balance(self, account_id: str) -> int:
        row = self._db.execute(
            "SELECT balance FROM accounts WHERE id = ?", (account_id,)
        ).fetchone()
        if row is None:
            known = ", ".join(r[0] for r in self._db.execute("SELECT id FROM accounts ORDER BY id"))
            raise LedgerError(
                ErrorCode.UNKNOWN_ACCOUNT,
                f"There is no account {account_id!r}. Known accounts: {known}.",
            )
        return int(row[0])

    def accounts(self) -> list[Account]:
        with self._lock:
            rows = self._db.execute("SELECT id, balance FROM accounts ORDER BY id").fetchall()
        return [Account(id=str(id_), balance=int(balance)) for id_, balance in rows]

    def account(self, account_id: str) -> Account:
        with self._lock:
            return Account(id=account_id, balance=self._balance(account_id))

    def movements(self, after_seq: int = 0, limit: int = DEFAULT_PAGE) -> list[Movement]:
        """The movements with seq greater than ``after_seq``, oldest first, at most ``limit``."""
        if isinstance(after_seq, bool) or not isinstance(after_seq, int) or after_seq < 0:
            raise LedgerError(
                ErrorCode.INVALID_REQUEST,
                f"after must be a ledger seq (a whole number >= 0), got {after_seq!r}",
            )
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise LedgerError(
                ErrorCode.INVALID_REQUEST,
                f"limit must be a whole number from 1 to {MAX_PAGE}, got {limit!r}",
            )
        # No seq exceeds SQLite's 64-bit INTEGER, which cannot even hold a bigger `after`.
        after_seq = min(after_seq, MAX_SEQ)
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_MOVEMENT_COLUMNS} FROM movements WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
        return [_movement(row) for row in rows]

    def total(self) -> int:
        """All the money in the bank: transfers between accounts never change it."""
        with self._lock:
            (total,) = self._db.execute("SELECT COALESCE(SUM(balance), 0) FROM accounts").fetchone()
        return int(total)
