"""The lever catalogue: every way the lab can be broken on purpose, each defined once.

A lever is one small class, as a testcontainers wait strategy is: how it is pulled
(``pull``), how it is undone (``undo``), how it is described to a person
(``summary``, ``describe``, ``undo_hint``), and how to find it on in a running lab
(``on_now``: what `status`, the panel and `restore` show and put back). A new kind of
fault is a new class here and an entry in ``CATALOGUE``; the CLI, `status`, the soak,
the experiments and the panel read it, and tests/unit/test_levers.py fails until the
new lever appears everywhere it must.

Pulling and undoing are blocking Docker or HTTP calls; async callers run them in a
thread (``asyncio.to_thread``) so their watchers keep watching.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from bank.client import BankClient
from bank.models import Fault, FaultMode, FaultState
from lab.constants import SERVICES
from lab.stack import Container, Stack, StackError

T = TypeVar("T")

# How long a bank call of a lever may take before the lever gives up.
BANK_TIMEOUT = 5.0

# The bank's fault modes as a learner meets them (the CLI's help, the panel, `status`).
FAULT_MODES: dict[FaultMode, str] = {
    FaultMode.ERROR: "the bank refuses the call at once (503 injected_fault); no money moves",
    FaultMode.LATENCY: "the bank waits --latency-ms (+/- --jitter-ms), then works normally",
    FaultMode.HANG: "the bank never answers and moves no money: the caller's timeout decides",
    FaultMode.DROP_RESPONSE: (
        "the bank moves the money, then never answers - the case that teaches idempotency"
    ),
    FaultMode.DOWN: "the bank answers 503 bank_down at once, as if it were down; no money moves",
}
FAULT_OPERATIONS = ("withdraw", "deposit", "all")


def describe_fault(fault: Fault) -> str:
    """'error on 50% of calls', 'latency (2000 ms +/- 500 ms)'."""
    text = str(fault.mode)
    if fault.rate < 1:
        text += f" on {fault.rate:.0%} of calls"
    if fault.latency_ms:
        jitter = f" +/- {fault.jitter_ms} ms" if fault.jitter_ms else ""
        text += f" ({fault.latency_ms} ms{jitter})"
    return text


class Lever(ABC):
    """One way to break the lab, and the way back."""

    # The lever's name, and the CLI command (`python -m lab <command>`) that pulls it.
    command: ClassVar[str]
    # The CLI command (and Makefile target) that undoes it.
    undo_command: ClassVar[str]
    # The Makefile targets that pull and undo it.
    make_target: ClassVar[str]
    make_undo: ClassVar[str]
    # One line for a person: what pulling it does.
    summary: ClassVar[str]

    @abstractmethod
    def pull(self, stack: Stack) -> list[str]:
        """Break the lab; returns the names of what it broke (containers, operations)."""

    @abstractmethod
    def undo(self, stack: Stack) -> list[str]:
        """Put it back; returns what it put back (empty: nothing was on)."""

    @abstractmethod
    def describe(self) -> str:
        """What is broken, in a few words: 'worker killed (SIGKILL)'."""

    @abstractmethod
    def undo_hint(self) -> str:
        """The command that puts it back: 'make start SERVICE=worker'."""

    @classmethod
    @abstractmethod
    def on_now(cls, lab: LabNow) -> list[Lever]:
        """The levers of this kind that are on in the lab now."""


@dataclass(frozen=True)
class ServiceLever(Lever):
    """A lever on one service's containers (all of them, one at random, or number N)."""

    service: str
    which: str = "all"

    def _named(self, done: Sequence[Container]) -> list[str]:
        return [c.name for c in done]


@dataclass(frozen=True)
class Kill(ServiceLever):
    command: ClassVar[str] = "kill"
    undo_command: ClassVar[str] = "start"
    make_target: ClassVar[str] = "kill"
    make_undo: ClassVar[str] = "start"
    summary: ClassVar[str] = "SIGKILL a service: a crash, no shutdown code runs"
    # What a learner should know once the service is killed.
    AFTER: ClassVar[dict[str, str]] = {
        "worker": (
            "Workflows keep their state in Temporal; start it again with "
            "`make start SERVICE=worker`."
        ),
        "temporal": (
            "Its state is on disk (the temporal-data volume); the worker and the starter keep "
            "retrying until it is back: `make start SERVICE=temporal`."
        ),
        "bank": (
            "The ledger is committed in SQLite (the bank-data volume); activities retry until "
            "it is back, and a restart clears the fault switch: `make start SERVICE=bank`."
        ),
    }

    def pull(self, stack: Stack) -> list[str]:
        return self._named(stack.kill(self.service, self.which))

    def undo(self, stack: Stack) -> list[str]:
        return self._named(stack.start(self.service, wait=False))

    def describe(self) -> str:
        return f"{self.service} killed (SIGKILL)"

    def undo_hint(self) -> str:
        return f"make start SERVICE={self.service}"

    @classmethod
    def on_now(cls, lab: LabNow) -> list[Lever]:
        return [cls(c.service, _number(c)) for c in lab.containers if _ours(c) and c.killed]


@dataclass(frozen=True)
class Stop(ServiceLever):
    command: ClassVar[str] = "stop"
    undo_command: ClassVar[str] = "start"
    make_target: ClassVar[str] = "stop"
    make_undo: ClassVar[str] = "start"
    summary: ClassVar[str] = "stop a service gracefully (SIGTERM)"

    def pull(self, stack: Stack) -> list[str]:
        running = [c for c in stack.containers(self.service) if c.state in ("running", "paused")]
        stack.stop(self.service)
        return self._named(running)

    def undo(self, stack: Stack) -> list[str]:
        return self._named(stack.start(self.service, wait=False))

    def describe(self) -> str:
        return f"{self.service} stopped"

    def undo_hint(self) -> str:
        return f"make start SERVICE={self.service}"

    @classmethod
    def on_now(cls, lab: LabNow) -> list[Lever]:
        return [
            cls(c.service, _number(c))
            for c in lab.containers
            if _ours(c) and c.state in ("exited", "created", "dead") and not c.killed
        ]


@dataclass(frozen=True)
class Pause(ServiceLever):
    command: ClassVar[str] = "pause"
    undo_command: ClassVar[str] = "unpause"
    make_target: ClassVar[str] = "pause"
    make_undo: ClassVar[str] = "unpause"
    summary: ClassVar[str] = "freeze a service (docker pause) for a while: it answers nothing"

    def pull(self, stack: Stack) -> list[str]:
        return self._named(stack.pause(self.service, self.which))

    def undo(self, stack: Stack) -> list[str]:
        return self._named(stack.unpause(self.service))

    def describe(self) -> str:
        return f"{self.service} paused (frozen)"

    def undo_hint(self) -> str:
        return f"make unpause SERVICE={self.service}"

    @classmethod
    def on_now(cls, lab: LabNow) -> list[Lever]:
        return [
            cls(c.service, _number(c)) for c in lab.containers if _ours(c) and c.state == "paused"
        ]


@dataclass(frozen=True)
class Disconnect(ServiceLever):
    command: ClassVar[str] = "disconnect"
    undo_command: ClassVar[str] = "reconnect"
    make_target: ClassVar[str] = "disconnect"
    make_undo: ClassVar[str] = "reconnect"
    summary: ClassVar[str] = "cut a service off the network for a while (a real partition)"
    # What a disconnect cuts, per service (Stack.links; compose/compose.yaml).
    AFTER: ClassVar[dict[str, str]] = {
        "worker": (
            "It reaches neither Temporal nor the bank: its polls and its bank calls fail, and "
            "Temporal times its activities out and retries them once it is back."
        ),
        "temporal": (
            "The worker and the starter cannot reach it, and neither can this machine: its "
            "published ports (the UI, gRPC) are gone until it is reconnected."
        ),
        "bank": (
            "The worker and the starter cannot reach it. This machine still can: its "
            "published port lands on its control network, which the disconnect leaves alone, "
            "so its page, `make status` and `make fault` keep working while the worker's "
            "calls fail."
        ),
    }

    def pull(self, stack: Stack) -> list[str]:
        return self._named(stack.disconnect(self.service, self.which))

    def undo(self, stack: Stack) -> list[str]:
        cut = [
            c
            for c in stack.containers(self.service)
            if c.state == "running" and not stack.is_connected(c)
        ]
        stack.reconnect(self.service)
        return self._named(cut)

    def describe(self) -> str:
        return f"{self.service} cut off the network"

    def undo_hint(self) -> str:
        return f"make reconnect SERVICE={self.service}"

    @classmethod
    def on_now(cls, lab: LabNow) -> list[Lever]:
        return [
            cls(c.service, _number(c))
            for c in lab.containers
            if _ours(c) and c.state == "running" and not lab.connected(c)
        ]


@dataclass(frozen=True)
class BankFault(Lever):
    """The bank's fault switch on withdraw, deposit or both (its HTTP API)."""

    command: ClassVar[str] = "fault"
    undo_command: ClassVar[str] = "fault clear"
    make_target: ClassVar[str] = "fault"
    make_undo: ClassVar[str] = "faults-clear"
    summary: ClassVar[str] = "set the bank's fault switch: error, latency, hang, drop, down"

    operation: str  # withdraw, deposit or all
    fault: Fault

    def pull(self, stack: Stack) -> list[str]:
        asyncio.run(_bank(stack, lambda bank: bank.set_fault(self.operation, self.fault)))
        return [self.operation]

    def undo(self, stack: Stack) -> list[str]:
        before = asyncio.run(_bank(stack, lambda bank: bank.faults()))
        op = None if self.operation == "all" else self.operation
        asyncio.run(_bank(stack, lambda bank: bank.clear_faults(op)))
        return [name for name, f in _switch(before).items() if f and op in (None, name)]

    def describe(self) -> str:
        target = "withdraw and deposit" if self.operation == "all" else self.operation
        return f"bank {target}: {describe_fault(self.fault)}"

    def undo_hint(self) -> str:
        return "make faults-clear"

    @classmethod
    def on_now(cls, lab: LabNow) -> list[Lever]:
        state = lab.faults
        return [] if state is None else [cls(op, f) for op, f in _switch(state).items() if f]


class LabNow:
    """The lab as the levers' ``on_now`` look at it: each thing read once, when first
    asked. A caller that has read something already (`status` reads the fault switch)
    passes it in."""

    _UNREAD: ClassVar[object] = object()

    def __init__(self, stack: Stack, *, faults: FaultState | object | None = _UNREAD) -> None:
        self.stack = stack
        self._faults = faults

    @functools.cached_property
    def containers(self) -> list[Container]:
        return self.stack.containers()

    def connected(self, c: Container) -> bool:
        try:
            return self.stack.is_connected(c)
        except StackError:
            return True  # gone while we looked: nothing to reconnect

    @property
    def faults(self) -> FaultState | None:
        """The bank's fault switch; None when the bank does not answer (a stopped bank has
        no switch on: a restart clears it)."""
        if self._faults is LabNow._UNREAD:
            bank = [c for c in self.containers if c.service == "bank"]
            self._faults = None
            if bank and bank[0].state == "running":
                # A paused or cut-off bank: nothing to say about its switch.
                with contextlib.suppress(Exception):
                    self._faults = asyncio.run(_bank(self.stack, lambda b: b.faults()))
        assert self._faults is None or isinstance(self._faults, FaultState)
        return self._faults


CATALOGUE: tuple[type[Lever], ...] = (Kill, Stop, Pause, Disconnect, BankFault)


def levers_on(stack: Stack) -> list[Lever]:
    """Every lever on in the lab now, in the catalogue's order."""
    lab = LabNow(stack)
    return [found for kind in CATALOGUE for found in kind.on_now(lab)]


# The order levers come off in: a frozen container cannot be reconnected or stopped,
# and the fault switch is reachable only once the bank runs again.
UNDO_ORDER: tuple[type[Lever], ...] = (Pause, Disconnect, Kill, Stop, BankFault)


def undo_all(stack: Stack) -> list[str]:
    """Puts back every lever that is on; returns what it did, a sentence each, for people.
    One service's containers come back together, so a service is undone once per kind."""
    done: list[str] = []
    for kind in UNDO_ORDER:
        seen: set[str] = set()
        for found in kind.on_now(LabNow(stack)):
            key = getattr(found, "service", None) or found.describe()
            if key in seen:
                continue
            seen.add(key)
            found.undo(stack)
            done.append(f"{found.describe()}: undone ({found.undo_hint()}).")
    return done


# --- helpers ------------------------------------------------------------------------------


def _ours(c: Container) -> bool:
    return c.service in SERVICES


def _number(c: Container) -> str:
    """worker-2's "2": the `which` that names this one container."""
    return c.name.rpartition("-")[2]


def _switch(state: FaultState) -> dict[str, Fault | None]:
    return {"withdraw": state.withdraw, "deposit": state.deposit}


async def _bank(stack: Stack, call: Callable[[BankClient], Awaitable[T]]) -> T:
    async with BankClient(stack.bank_url, timeout=BANK_TIMEOUT, token=stack.token) as bank:
        return await asyncio.wait_for(call(bank), BANK_TIMEOUT * 2)
